"""save_model / load_model: versioned .npz model files, never pickled, read defensively.

Imports numpy, the standard library and the core. Layout (format version 3):
  format        () str      "mnistnet-model"
  version       () int64    FORMAT_VERSION
  net           () str      optional (version 3): the layer stack in one line (mnistnet.net),
                            for any network but a dense ReLU MLP; W and b shapes follow from it
  layer_sizes   (L+1,) int64  an MLP's sizes; a Net's Net.layer_sizes (784, flat, dense widths)
  input_scaling (2,) float64  mean, std
  W0, b0, ...   float32     weights (fan_in, fan_out) and biases (fan_out,) of each dense or
                            conv layer (a conv's fan_in is channels x k x k)
  meta          () str      JSON: {"history": History.to_dict() or null}
  snapshots     (n,) uint8  optional (version 2, MLPs): the weights through training, in
                            `mnistnet.snapshots.encode`'s format (float16, at most its capacity)
Version 1 files (no snapshots) and version 2 files still load: an MLP is written as before, so
older readers refuse only what they cannot read (the version number). load_model sets
`model.snapshots` (a list, empty without the member); model_bytes writes the model's own
unless given others.

A model file may come from anyone (the Runs page takes uploads), so load_model reads the zip's
directory and every member's .npy header before it decompresses any array data, and then reads
exactly the bytes those checked headers promise: a file can cost no more memory than the
largest model within the network limits, however it lies.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import tempfile
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import snapshots as snap
from .net import MAX_LAYERS, Net, param_shapes, plan
from .network import MAX_HIDDEN_LAYERS, MAX_PARAMETERS, MLP, check_model_limits
from .train import History

FORMAT = "mnistnet-model"
FORMAT_VERSION = 3  # 2: the optional snapshots member; 3: the optional net member (layer stacks)
NET_MAX_CHARS = 400  # mnistnet.net's longest line
MAX_META_BYTES = 8 * 2**20  # the history's JSON as numpy stores it (4 bytes a character)
# The largest legitimate file: the largest network in float32, its history, the zip's overhead.
# Snapshots fit in the same bound: their budget is what a model's float32 leaves of the largest's.
MAX_FILE_BYTES = 4 * MAX_PARAMETERS + MAX_META_BYTES + 2**20
MAX_MEMBERS = 7 + 2 * (max(MAX_HIDDEN_LAYERS, MAX_LAYERS) + 1)
MAX_RATIO = 100  # float32 weights barely compress; a bigger ratio is a zip bomb
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date, for every member
_HEADER_MAX = 4096  # bytes read of a member before its .npy header is checked
# What zipfile raises on a damaged archive or member (zlib.error: a corrupt deflate stream).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, struct.error)


def model_bytes(model: MLP, snapshots=None) -> bytes:
    """The .npz file of `model` as bytes (what save_model writes), with `snapshots` (a list
    of `mnistnet.snapshots.Snapshot`; None: the model's own `model.snapshots`, if any).

    ValueError if the model is over the network limits, has a non-finite weight, bias or
    input scaling, a history or snapshots that load_model would refuse: what is saved always
    loads.
    """
    if snapshots is None:
        snapshots = getattr(model, "snapshots", None) or []
    is_net = isinstance(model, Net)
    if is_net and snapshots:
        raise ValueError("snapshots are kept for dense ReLU networks only")
    if not is_net:
        check_model_limits(model.layer_sizes)
    scaling = np.array([model.input_mean, model.input_std], dtype=np.float64)
    if not np.isfinite(scaling).all() or scaling[1] <= 0:
        raise ValueError(f"input scaling must be a finite mean and std > 0, got {scaling.tolist()}")
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(FORMAT_VERSION if is_net else 2, dtype=np.int64),
        **({"net": np.array(model.spec)} if is_net else {}),
        "layer_sizes": np.array(model.layer_sizes, dtype=np.int64),
        "input_scaling": scaling,
        "meta": np.array(json.dumps({"history": _history_dict(model)})),
    }
    for i, (W, b) in enumerate(zip(model.weights, model.biases)):
        for key, a in ((f"W{i}", W), (f"b{i}", b)):
            if not np.isfinite(a).all():
                raise ValueError(f"{key} contains NaN or infinite values; only finite models are saved")
        arrays[f"W{i}"], arrays[f"b{i}"] = W, b
    if snapshots:
        if snapshots[0].layer_sizes != model.layer_sizes:  # encode checks they are all alike
            raise ValueError(f"the snapshots are of a {'-'.join(map(str, snapshots[0].layer_sizes))} "
                             f"network, not {'-'.join(map(str, model.layer_sizes))}")
        arrays["snapshots"] = np.frombuffer(snap.encode(snapshots), np.uint8)
    # np.savez's own way, but with a fixed timestamp: the same model gives the same bytes (a
    # download composed from the store twice is the same file).
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for key, a in arrays.items():
            with zf.open(zipfile.ZipInfo(f"{key}.npy", _ZIP_TIME), "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)
    return buf.getvalue()


def _history_dict(model: MLP) -> dict | None:
    hist = getattr(model, "history", None)
    if hist is None:
        return None
    d = hist.to_dict()
    History.from_dict(d)  # the check load_model makes: ValueError names what it would refuse
    return d


def save_model(model: MLP, path, snapshots=None) -> Path:
    """Write `model` (with its history and snapshots, as model_bytes) to `path` atomically: a
    temp file, then rename."""
    path = Path(path)
    data = model_bytes(model, snapshots)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_model(source, name: str | None = None) -> MLP:
    """A path, bytes or binary file object of a .npz written by save_model -> MLP.

    Raises ValueError, one sentence starting with `name` (default: the path, or "model file"),
    for anything but a well-formed model file within the network limits: not a zip, pickled,
    truncated, corrupt, mis-shaped, non-finite, over the limits, foreign, a newer version or an
    invalid history. FileNotFoundError (an OSError) for a path that does not exist.
    """
    data, name = _read_source(source, name)
    if not data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise ValueError(f"{name}: not an .npz model file (it is not a zip archive)")
    # Every central directory entry starts with these 4 bytes: counting them bounds the work
    # (and memory) of zipfile's directory parsing before it starts. The slack is for weights
    # that happen to contain them.
    if data.count(b"PK\x01\x02") > 4 * MAX_MEMBERS:
        raise ValueError(f"{name}: has more than {MAX_MEMBERS} members, more than any model file")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (*_ZIP_ERRORS, ValueError):
        raise ValueError(f"{name}: not a readable .npz file (a truncated or corrupt zip archive)") from None
    with zf:
        return _model_from_zip(_Reader(zf, name, _members(zf, name)))


def _read_source(source, name: str | None) -> tuple[bytes, str]:
    """-> (the file's bytes, at most MAX_FILE_BYTES of them; the name for messages)."""
    if isinstance(source, (str, os.PathLike)):
        name = name or str(source)
        with open(source, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = source if len(source) > MAX_FILE_BYTES else bytes(source)
    else:
        data = source.read(MAX_FILE_BYTES + 1)
    name = name or "model file"
    if not data:
        raise ValueError(f"{name}: the file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{name}: over {MAX_FILE_BYTES:,} bytes, larger than the largest model file")
    return data, name


def _members(zf: zipfile.ZipFile, name: str) -> dict[str, zipfile.ZipInfo]:
    """The archive's directory, checked: file name -> ZipInfo, nothing decompressed yet."""
    members = {}
    for info in zf.infolist():
        shown = info.filename[:60]
        if info.filename in members:
            raise ValueError(f"{name}: lists the member {shown!r} twice")
        if info.flag_bits & 0x1:
            raise ValueError(f"{name}: the member {shown!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError(f"{name}: the member {shown!r} uses a compression method .npz files never use")
        members[info.filename] = info
    if len(members) > MAX_MEMBERS:
        raise ValueError(f"{name}: has {len(members)} members, more than any model file")
    return members


@dataclass(frozen=True)
class _Spec:
    """What one member must hold: its shape, dtype kinds ("f", "iu", "U") and item sizes."""

    shape: tuple[int, ...]
    kinds: str
    itemsizes: tuple[int, int]  # smallest, largest bytes per item
    what: str  # for messages: "float32", "a string", ...


_FIXED = {"format": _Spec((), "U", (4, 256), "a string"),
          "version": _Spec((), "iu", (1, 8), "an integer"),
          "input_scaling": _Spec((2,), "f", (4, 8), "floats"),
          "meta": _Spec((), "U", (4, MAX_META_BYTES), "a JSON string")}


def _specs(sizes: tuple[int, ...], net: str | None) -> dict[str, _Spec]:
    """Every member a model file of these layer sizes (and layer stack) has (keys without .npy)."""
    specs = {**_FIXED, "layer_sizes": _Spec((len(sizes),), "iu", (1, 8), "integers")}
    if net is not None:
        specs["net"] = _Spec((), "U", (4, 4 * NET_MAX_CHARS), "a string")
        shapes = param_shapes(net)
    else:
        shapes = [((a, b), (b,)) for a, b in zip(sizes[:-1], sizes[1:])]
    for i, (w_shape, b_shape) in enumerate(shapes):
        specs[f"W{i}"] = _Spec(w_shape, "f", (4, 4), "float32")
        specs[f"b{i}"] = _Spec(b_shape, "f", (4, 4), "float32")
    return specs


@dataclass(frozen=True)
class _Npy:
    """One member's .npy header, read before any of its data."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # bytes of magic and header: where the data starts

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class _Reader:
    """Reads members of one open archive: headers first, then exactly the data they promise."""

    def __init__(self, zf: zipfile.ZipFile, name: str, members: dict[str, zipfile.ZipInfo]):
        self.zf, self.name, self.members = zf, name, members
        self.version = 0  # the file's format version, once read

    def fail(self, message: str) -> ValueError:
        return ValueError(f"{self.name}: {message}")

    def header(self, key: str) -> _Npy:
        """The .npy header of member `key` (.npy added), unchecked; reads at most _HEADER_MAX bytes."""
        info = self.members.get(f"{key}.npy")
        if info is None:
            raise self.fail(f"missing array '{key}' (not an mnistnet model file, or a damaged one)")
        try:
            with self.zf.open(info) as f:
                head = io.BytesIO(f.read(_HEADER_MAX))
            version = np.lib.format.read_magic(head)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read:
                raise ValueError(version)
            shape, fortran, dtype = read[version](head, max_header_size=_HEADER_MAX)
        except _ZIP_ERRORS:
            raise self.fail(f"'{key}' is damaged (truncated, or its checksum does not match)") from None
        # numpy parses the header with ast.literal_eval, and with tokenize if that fails
        except (ValueError, TypeError, SyntaxError, tokenize.TokenError, RecursionError, OverflowError):
            raise self.fail(f"'{key}' is not a readable .npy array (its header is malformed)") from None
        return _Npy(info, shape, dtype, fortran, head.tell())

    def check(self, key: str, npy: _Npy, spec: _Spec) -> _Npy:
        """npy if it matches spec and its declared unpacked size; ValueError naming the mismatch."""
        if npy.dtype.hasobject:
            raise self.fail(f"'{key}' holds pickled Python objects, which mnistnet never loads")
        lo, hi = spec.itemsizes
        if npy.shape != spec.shape or npy.dtype.kind not in spec.kinds or not lo <= npy.dtype.itemsize <= hi:
            raise self.fail(f"'{key}' has shape {str(npy.shape)[:60]} and dtype {str(npy.dtype)[:40]}, "
                            f"expected {spec.shape} {spec.what}")
        if npy.info.file_size != npy.offset + npy.nbytes:
            raise self.fail(f"'{key}' declares {npy.info.file_size:,} bytes unpacked, but its header "
                            f"says {npy.offset + npy.nbytes:,}")
        return npy

    def data(self, key: str, npy: _Npy) -> np.ndarray:
        """The array of a checked header: exactly npy.nbytes read, writable, C order."""
        try:
            with self.zf.open(npy.info) as f:
                f.read(npy.offset)
                raw = f.read(npy.nbytes + 1)  # never more than the checked header promises
        except _ZIP_ERRORS:
            raise self.fail(f"'{key}' is damaged (truncated, or its checksum does not match)") from None
        if len(raw) != npy.nbytes:
            raise self.fail(f"'{key}' holds {len(raw):,} bytes of data, its header says {npy.nbytes:,}")
        a = np.frombuffer(bytearray(raw), npy.dtype).reshape(npy.shape, order="F" if npy.fortran else "C")
        return np.require(a, requirements=["C", "W"])

    def read(self, key: str, spec: _Spec) -> np.ndarray:
        return self.data(key, self.check(key, self.header(key), spec))


def _model_from_zip(r: _Reader) -> MLP:
    """Checks in order of cost: the small members, the directory, every header, then the arrays."""
    sizes, net = _layer_sizes(r)
    specs = _specs(sizes, net)
    optional = {"snapshots.npy"} if r.version >= 2 and net is None else set()
    extra = sorted(n[:40] for n in set(r.members) - {f"{k}.npy" for k in specs} - optional)
    if extra:
        raise r.fail(f"unexpected arrays {extra[:5]} for layer sizes {sizes}")
    unpacked = sum(i.file_size for i in r.members.values())
    packed = sum(i.compress_size for i in r.members.values())
    if unpacked > 2**20 and unpacked > MAX_RATIO * packed:
        raise r.fail(f"unpacks {packed:,} bytes to {unpacked:,}, a ratio over {MAX_RATIO} (a zip bomb)")
    later = [k for k in specs if k not in ("format", "version", "layer_sizes", "net")]
    headers = {k: r.check(k, r.header(k), specs[k]) for k in later}
    scaling = r.data("input_scaling", headers["input_scaling"]).astype(np.float64)
    if not np.isfinite(scaling).all() or scaling[1] <= 0:
        raise r.fail("'input_scaling' must be 2 finite numbers (mean, std > 0)")
    n = sum(k.startswith("W") for k in specs)
    weights = [r.data(f"W{i}", headers[f"W{i}"]) for i in range(n)]
    biases = [r.data(f"b{i}", headers[f"b{i}"]) for i in range(n)]
    try:
        if net is not None:
            model = Net.from_arrays(net, weights, biases, float(scaling[0]), float(scaling[1]))
        else:
            model = MLP.from_arrays(weights, biases, float(scaling[0]), float(scaling[1]))
    except ValueError as e:  # a non-finite array
        raise r.fail(str(e)) from None
    model.history = _history(r, r.data("meta", headers["meta"]).item(), sizes)
    model.snapshots = _snapshots(r, sizes) if "snapshots.npy" in r.members else []
    return model


def _layer_sizes(r: _Reader) -> tuple[tuple[int, ...], str | None]:
    """format, version, net and layer_sizes, read and checked -> (the layer sizes, the layer
    stack's line or None for an MLP), within the limits."""
    fmt = r.read("format", _FIXED["format"]).item()
    if fmt != FORMAT:
        raise r.fail(f"format is {fmt[:40]!r}, expected {FORMAT!r}")
    version = int(r.read("version", _FIXED["version"]).item())
    if version > FORMAT_VERSION:
        raise r.fail(f"format version {version} is newer than this mnistnet reads "
                     f"({FORMAT_VERSION}); upgrade mnistnet to load it")
    if version < 1:
        raise r.fail(f"unknown format version {version}")
    r.version = version
    net = None
    if "net.npy" in r.members and version >= 3:
        net = r.read("net", _Spec((), "U", (4, 4 * NET_MAX_CHARS), "a string")).item()
        try:
            expected = plan(net)  # shapes and limits only, nothing allocated
        except ValueError as e:
            raise r.fail(f"its layer stack is invalid ({e})") from None
        net = expected.spec
    npy = r.header("layer_sizes")
    n = npy.shape[0] if len(npy.shape) == 1 else 0
    most = MAX_LAYERS + 3 if net is not None else MAX_HIDDEN_LAYERS + 2
    if not 3 <= n <= most:
        raise r.fail(f"'layer_sizes' has shape {str(npy.shape)[:60]}; a model has 1 to "
                     f"{most - 2} hidden layers")
    sizes = r.data("layer_sizes", r.check("layer_sizes", npy, _Spec((n,), "iu", (1, 8), "integers")))
    if net is not None:
        if tuple(sizes.tolist()) != expected.layer_sizes:
            raise r.fail(f"'layer_sizes' {str(sizes.tolist())[:60]} does not match its layer stack "
                         f"'{net}' ({list(expected.layer_sizes)})")
        return expected.layer_sizes, net
    try:
        return check_model_limits(sizes.tolist()), None
    except ValueError as e:
        raise r.fail(str(e)) from None


def _history(r: _Reader, text: str, sizes: tuple[int, ...]) -> History | None:
    """The 'meta' member's JSON -> the History it holds (or None), checked strictly."""
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise r.fail("unreadable 'meta' (not valid JSON)") from None
    if not isinstance(meta, dict) or list(meta) != ["history"]:
        raise r.fail("unreadable 'meta' (expected a JSON object with one key, \"history\")")
    if meta["history"] is None:
        return None
    try:
        hist = History.from_dict(meta["history"])
    except ValueError as e:
        raise r.fail(f"its training history is invalid ({e})") from None
    if tuple(hist.layer_sizes) != sizes:
        raise r.fail(f"its history is of a {'-'.join(map(str, hist.layer_sizes))} network, "
                     f"not {'-'.join(map(str, sizes))}")
    return hist


def _snapshots(r: _Reader, sizes: tuple[int, ...]) -> list:
    """The 'snapshots' member: its header checked against what a model of `sizes` may keep,
    then its bytes decoded and checked by `mnistnet.snapshots.decode`."""
    npy = r.header("snapshots")
    most = len(snap.MAGIC) + 4 + snap.MAX_HEADER_BYTES + snap.capacity(sizes) * snap.snapshot_bytes(sizes)
    n = npy.shape[0] if len(npy.shape) == 1 else -1
    if not 0 <= n <= most:
        raise r.fail(f"'snapshots' has shape {str(npy.shape)[:60]}; a {'-'.join(map(str, sizes))} "
                     f"model's snapshots take at most {most:,} bytes")
    data = r.data("snapshots", r.check("snapshots", npy, _Spec((n,), "u", (1, 1), "bytes (uint8)")))
    try:
        return snap.decode(data, sizes)
    except ValueError as e:
        raise r.fail(f"its snapshots are invalid ({e})") from None
