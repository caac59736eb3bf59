"""Hostile model files, zips and images, shared by tests/test_hostile.py and bench/hostile.py.

HOSTILE lists (name, kind, make): kind "model" goes to load_model / import_model_upload, "zip"
to digits_from_zip, "image" to image_to_digit; make() -> bytes. Every one must be refused.
fuzz_models and fuzz_zips yield seeded malformed variants of good files (some may still load).
reset_peak_rss and peak_rss_kb measure a process's peak memory, Pillow's buffers included.
"""

from __future__ import annotations

import functools
import io
import json
import re
import resource
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mnistnet import MLP, History
from mnistnet.metrics import summarize
from mnistnet.modelfile import model_bytes
from mnistnet.net import Net

LOCAL, CENTRAL = b"PK\x03\x04", b"PK\x01\x02"


# -- memory ----------------------------------------------------------------------------------
def reset_peak_rss() -> int:
    """Set this process's peak RSS to its current RSS where Linux allows it (/proc/self/clear_refs)
    -> the peak now (KB). ru_maxrss never goes below the peak of the parent that spawned the
    process, nor below its imports' own peak, so without the reset it would hide anything smaller."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return peak_rss_kb()


def peak_rss_kb() -> int:
    """This process's peak RSS (KB): VmHWM on Linux, ru_maxrss elsewhere."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(re.search(r"VmHWM:\s*(\d+) kB", status).group(1))


# -- building blocks -------------------------------------------------------------------------
def tiny_model(seed: int = 0, hidden: int = 16) -> MLP:
    """784-hidden-10 with a one-epoch history that passes History.from_dict."""
    model = MLP((784, hidden, 10), seed=seed)
    y = np.arange(100) % 10
    metrics = summarize(y, (y + (y > 7)) % 10, 0.5)
    record = {"epoch": 1, "seconds": 1.0, "train_seconds": 0.9, "learning_rate": 0.1, "partial": False,
              "train": {k: v for k, v in metrics.items() if k != "confusion"},
              "val": {k: v for k, v in metrics.items() if k != "confusion"}, "test": metrics}
    model.history = History(list(model.layer_sizes), {"epochs": 1}, [record], [[100, 0.5]], "finished")
    return model


def arrays_of(data: bytes) -> dict:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def npz(arrays: dict, compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def npy(descr, shape, data: bytes = b"", fortran: bool = False, version=(1, 0)) -> bytes:
    """A hand-made .npy: any header (it need not match the data), then `data`."""
    buf = io.BytesIO()
    write = {(1, 0): np.lib.format.write_array_header_1_0, (2, 0): np.lib.format.write_array_header_2_0}
    write[version](buf, {"descr": descr, "fortran_order": fortran, "shape": tuple(shape)})
    return buf.getvalue() + data


def npy_of(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=a.dtype.hasobject)
    return buf.getvalue()


def zip_of(entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """entries: {name: bytes}, or [(name, bytes)] to repeat a name."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", compression) as z:
        warnings.simplefilter("ignore")  # "Duplicate name": on purpose
        for name, data in (entries.items() if isinstance(entries, dict) else entries):
            z.writestr(name, data)
    return buf.getvalue()


def model_zip(model_arrays: dict, **members) -> bytes:
    """A model file as a zip of .npy members: the arrays, with `members` (raw .npy bytes, or
    None to drop one) replacing or adding some."""
    entries = {f"{k}.npy": npy_of(v) for k, v in model_arrays.items()}
    for k, v in members.items():
        entries.pop(f"{k}.npy", None)
        if v is not None:
            entries[f"{k}.npy"] = v
    return zip_of(entries, zipfile.ZIP_STORED)


def _entries(data: bytes, sig: bytes):
    """(offset, file name) of every local (LOCAL) or central (CENTRAL) header."""
    name_at = {LOCAL: (26, 30), CENTRAL: (28, 46)}[sig]
    i = data.find(sig)
    while i >= 0:
        n = struct.unpack_from("<H", data, i + name_at[0])[0]
        yield i, data[i + name_at[1]:i + name_at[1] + n].decode("utf-8", "replace")
        i = data.find(sig, i + 4)


def patch(data: bytes, member: str, flags: int | None = None, file_size: int | None = None) -> bytes:
    """Set flag bits (local and central headers) or the declared unpacked size (central) of a member."""
    out = bytearray(data)
    for sig, flag_at, size_at in ((LOCAL, 6, 22), (CENTRAL, 8, 24)):
        for i, name in _entries(data, sig):
            if name == member:
                if flags is not None:
                    struct.pack_into("<H", out, i + flag_at, struct.unpack_from("<H", out, i + flag_at)[0] | flags)
                if file_size is not None and sig == CENTRAL:
                    struct.pack_into("<I", out, i + size_at, file_size)
    return bytes(out)


def flip_in_member(data: bytes, member: str, at: int = 10) -> bytes:
    """Flip one byte of a stored member's data (its CRC no longer matches)."""
    out = bytearray(data)
    for i, name in _entries(data, LOCAL):
        if name == member:
            n, e = struct.unpack_from("<HH", data, i + 26)
            out[i + 30 + n + e + at] ^= 0xFF
    return bytes(out)


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def digit_png(digit: int = 3, side: int = 64) -> bytes:
    """A black-on-white digit drawn with Pillow's default font, scaled to `side` px."""
    im = Image.new("L", (28, 28), 255)
    ImageDraw.Draw(im).text((10, 8), str(digit), fill=0)
    return png(np.asarray(im.resize((side, side))))


@functools.cache
def good_model_bytes() -> bytes:
    return model_bytes(tiny_model())


def _good_arrays() -> dict:
    return arrays_of(good_model_bytes())


def _meta(history) -> np.ndarray:
    return np.array(json.dumps({"history": history}))


def _history_missing_keys() -> bytes:
    hist = tiny_model().history.to_dict()
    del hist["epochs"][0]["test"]["correct"], hist["status"]
    return npz({**_good_arrays(), "meta": _meta(hist)})


def _history_nan_accuracy() -> dict:
    hist = tiny_model().history.to_dict()
    hist["epochs"][0]["test"]["accuracy"] = float("nan")  # json.dumps writes NaN
    return hist


@functools.cache
def zeros_bomb() -> bytes:
    """The reported bomb: 784-200000-10 of compressed zeros, 620 KB asking for 634 MB of weights."""
    a = _good_arrays()
    big = {"layer_sizes": np.array([784, 200_000, 10]), "W0": np.zeros((784, 200_000), np.float32),
           "b0": np.zeros(200_000, np.float32), "W1": np.zeros((200_000, 10), np.float32),
           "b1": np.zeros(10, np.float32), "meta": _meta(None)}
    return npz({**a, **big}, compressed=True)


def _zero_weights_bomb() -> bytes:
    """Within the limits (784-2048-10) but compressing over 100x: refused as a zip bomb."""
    a = _good_arrays()
    return npz({**a, "layer_sizes": np.array([784, 2048, 10]), "W0": np.zeros((784, 2048), np.float32),
                "b0": np.zeros(2048, np.float32), "W1": np.zeros((2048, 10), np.float32), "meta": _meta(None)},
               compressed=True)


def _declares_units(n: int) -> bytes:
    return npz({**_good_arrays(), "layer_sizes": np.array([784, n, 10]), "meta": _meta(None)})


def _with(**arrays) -> bytes:
    return npz({**_good_arrays(), **arrays})


def _huge_header(key: str, shape, descr="<f4") -> bytes:
    return model_zip(_good_arrays(), **{key: npy(descr, shape)})


def _lying_size(member: str, size: int) -> bytes:
    return patch(model_zip(_good_arrays()), member, file_size=size)


def _many_members(n: int) -> bytes:
    return zip_of({f"x{i}.npy": b"" for i in range(n)}, zipfile.ZIP_STORED)


def _deep_json() -> bytes:
    return _with(meta=np.array('{"history": ' + "[" * 100_000 + "]" * 100_000 + "}"))


def _v2_header_huge_length() -> bytes:
    raw = b"\x93NUMPY\x02\x00" + struct.pack("<I", 4_000_000_000) + b"{"
    return model_zip(_good_arrays(), W0=raw)


HOSTILE_MODELS = [
    ("zeros bomb 784-200000-10", zeros_bomb),
    ("declares 10^9 units", lambda: _declares_units(10**9)),
    ("5 hidden layers", lambda: _with(layer_sizes=np.array([784, 8, 8, 8, 8, 8, 10]))),
    ("zero weights, ratio > 100", _zero_weights_bomb),
    ("text renamed .npz", lambda: b"just some notes, not a model\n" * 20),
    ("empty", lambda: b""),
    ("random bytes", lambda: np.random.default_rng(0).bytes(5000)),
    ("PK and random bytes", lambda: b"PK\x03\x04" + np.random.default_rng(1).bytes(5000)),
    ("truncated half", lambda: good_model_bytes()[: len(good_model_bytes()) // 2]),
    ("history with missing keys", _history_missing_keys),
    ("history of another network", lambda: _with(meta=_meta({**tiny_model(hidden=8).history.to_dict()}))),
    ("history with NaN accuracy", lambda: _with(meta=_meta(_history_nan_accuracy()))),
    ("history nested 100,000 deep", _deep_json),
    ("meta not JSON", lambda: _with(meta=np.array("{not json"))),
    ("NaN weights", lambda: _with(W0=np.full((784, 16), np.nan, np.float32))),
    ("inf bias", lambda: _with(b1=np.full(10, np.inf, np.float32))),
    ("NaN input scaling", lambda: _with(input_scaling=np.array([np.nan, 1.0]))),
    ("float64 weights", lambda: _with(W0=np.zeros((784, 16)))),
    ("int32 weights", lambda: _with(W0=np.zeros((784, 16), np.int32))),
    ("object (pickled) weights", lambda: _with(W0=np.array([object()], dtype=object))),
    ("wrong W1 shape", lambda: _with(W1=np.zeros((16, 9), np.float32))),
    ("missing b1", lambda: model_zip(_good_arrays(), b1=None)),
    ("extra member", lambda: model_zip(_good_arrays(), extra=npy_of(np.zeros(3)))),
    ("header declares (10^6, 10^6) W0", lambda: _huge_header("W0", (10**6, 10**6))),
    ("header declares 10^12 layer sizes", lambda: _huge_header("layer_sizes", (10**12,), "<i8")),
    ("header declares a 4 GB meta string", lambda: _huge_header("meta", (), "<U1000000000")),
    ("header with a 4 GB length field", _v2_header_huge_length),
    ("W0 declares 1 TB unpacked", lambda: _lying_size("W0.npy", 2**32 - 1)),
    ("W0 declares 1 MB unpacked", lambda: _lying_size("W0.npy", 2**20)),
    ("W0 declares 100 bytes unpacked", lambda: _lying_size("W0.npy", 100)),
    ("bad CRC in W0", lambda: flip_in_member(model_zip(_good_arrays()), "W0.npy", 500)),
    ("encrypted W0", lambda: patch(model_zip(_good_arrays()), "W0.npy", flags=0x1)),
    ("duplicate W0", lambda: zip_of([*((f"{k}.npy", npy_of(v)) for k, v in _good_arrays().items()),
                                     ("W0.npy", npy_of(np.zeros((784, 16), np.float32)))])),
    ("3,000 members", lambda: _many_members(3000)),
    ("nested zip as W0", lambda: model_zip(_good_arrays(), W0=zeros_bomb())),
    ("format version 4", lambda: _with(version=np.array(4))),
    ("foreign format", lambda: _with(format=np.array("something-else"))),
]


# -- snapshots in a model file (format version 2) ----------------------------------------------
# Built by hand from the format (mnistnet/snapshots.py's docstring), not by encode().
SNAP_MAGIC = b"mnistnet-snapshots\n"


def snap_raw(epochs, sizes=(784, 16, 10), payload: bytes | None = None, **header) -> bytes:
    """Snapshots bytes: the magic line, a JSON header (`header` overriding keys) and `payload`
    (default: zeros for every epoch, float16)."""
    h = {"version": 1, "layer_sizes": list(sizes), "epochs": list(epochs), "dtype": "<f2", **header}
    body = json.dumps(h).encode()
    if payload is None:
        n = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        payload = np.zeros(len(epochs) * n, "<f2").tobytes()
    return SNAP_MAGIC + struct.pack("<I", len(body)) + body + payload


def with_snapshots(raw: bytes) -> bytes:
    """The good tiny model's file with `raw` as its snapshots member."""
    return npz({**_good_arrays(), "snapshots": np.frombuffer(raw, np.uint8)})


def _nan_snapshot() -> bytes:
    n = 784 * 16 + 16 + 16 * 10 + 10
    a = np.zeros(2 * n, "<f2")
    a[n + 5] = np.nan
    return with_snapshots(snap_raw([0.0, 1.0], payload=a.tobytes()))


SNAPSHOT_MODELS = [
    ("snapshots: not the format", lambda: with_snapshots(b"random bytes, not snapshots at all")),
    ("snapshots: NaN weights", _nan_snapshot),
    ("snapshots: inf weights", lambda: with_snapshots(snap_raw([1.0], payload=np.full(
        784 * 16 + 16 + 16 * 10 + 10, np.inf, "<f2").tobytes()))),
    ("snapshots: another network", lambda: with_snapshots(snap_raw([0.0], sizes=(784, 8, 10)))),
    ("snapshots: 25 of them", lambda: with_snapshots(snap_raw([float(e) for e in range(25)]))),
    ("snapshots: epochs descending", lambda: with_snapshots(snap_raw([2.0, 1.0]))),
    ("snapshots: negative epoch", lambda: with_snapshots(snap_raw([-1.0]))),
    ("snapshots: data cut short", lambda: with_snapshots(snap_raw([0.0, 1.0])[:-100])),
    ("snapshots: data too long", lambda: with_snapshots(snap_raw([0.0]) + b"\0" * 64)),
    ("snapshots: newer version", lambda: with_snapshots(snap_raw([0.0], version=2))),
    ("snapshots: float32 data", lambda: with_snapshots(snap_raw([0.0], dtype="<f4"))),
    ("snapshots: 4 GB header length", lambda: with_snapshots(SNAP_MAGIC + struct.pack("<I", 2**32 - 1) + b"{}")),
    ("snapshots: header nested deep", lambda: with_snapshots(
        SNAP_MAGIC + struct.pack("<I", 4000) + b"[" * 2000 + b"]" * 2000)),
    ("snapshots: 10^9 units", lambda: with_snapshots(snap_raw([0.0], sizes=(784, 10**9, 10), payload=b""))),
    ("snapshots member declares 10^12 bytes", lambda: model_zip(_good_arrays(), snapshots=npy("|u1", (10**12,)))),
    ("snapshots member of float32", lambda: _with(snapshots=np.zeros(1000, np.float32))),
    ("snapshots member pickled", lambda: _with(snapshots=np.array([object()], dtype=object))),
    ("snapshots in a version 1 file", lambda: _with(version=np.array(1), snapshots=np.frombuffer(
        snap_raw([0.0]), np.uint8))),
]
HOSTILE_MODELS += SNAPSHOT_MODELS


# -- layer stacks in a model file (format version 3) -----------------------------------------
NET_LINE = "conv 4x5 - pool - conv 8x3 - pool - dense 16"


@functools.cache
def good_net_bytes() -> bytes:
    return model_bytes(Net(NET_LINE, seed=0))


def _net_with(**arrays) -> bytes:
    return npz({**arrays_of(good_net_bytes()), **arrays})


NET_MODELS = [
    ("net: not a layer", lambda: _net_with(net=np.array("conv 4x5 - spline 3"))),
    ("net: 999 filters", lambda: _net_with(net=np.array("conv 999x5 - pool - dense 16"))),
    # Within every per-token limit and the parameter limit, but keeping 3.7 million values per
    # image in training: refused from the line, before a single buffer exists.
    ("net: two 128-filter same convolutions", lambda: _net_with(net=np.array(
        "conv 128x3 same - conv 128x3 same - dense 16"))),
    ("net: eleven 128x9 convolutions", lambda: _net_with(net=np.array(
        " - ".join(["conv 128x9 same"] * 11) + " - dense 16"))),
    ("net: 4 GB line header", lambda: model_zip(arrays_of(good_net_bytes()), net=npy("<U1000000000", ()))),
    ("net: a number, not a line", lambda: _net_with(net=np.array(7))),
    ("net: layer sizes of another stack", lambda: _net_with(layer_sizes=np.array([784, 300, 16, 10]))),
    ("net: conv W0 of another shape", lambda: _net_with(W0=np.zeros((25, 5), np.float32))),
    ("net: conv W0 declares (10^6, 10^6)", lambda: model_zip(arrays_of(good_net_bytes()),
                                                             W0=npy("<f4", (10**6, 10**6)))),
    ("net: NaN in a kernel", lambda: _net_with(W1=np.full((36, 8), np.nan, np.float32))),
    ("net: a weight matrix too many", lambda: _net_with(W4=np.zeros((10, 10), np.float32),
                                                        b4=np.zeros(10, np.float32))),
    ("net: missing b2", lambda: model_zip(arrays_of(good_net_bytes()), b2=None)),
    ("net: in a version 2 file", lambda: _net_with(version=np.array(2))),
    ("net: with snapshots", lambda: _net_with(snapshots=np.frombuffer(snap_raw([0.0]), np.uint8))),
]
HOSTILE_MODELS += NET_MODELS


# -- digit uploads ---------------------------------------------------------------------------
def _zip_bomb_png() -> bytes:
    return zip_of({"3/bomb.png": b"\0" * (10 * 2**20)})


def _nested_zip_bomb() -> bytes:
    return zip_of({"3/a.png": digit_png(3), "3/inner.zip": zip_of({"3/z.png": b"\0" * (10 * 2**20)})})


def _inflates_beyond_declared() -> bytes:
    data = zip_of({"3/a.png": digit_png(3) + b"\0" * (5 * 2**20)})
    return patch(data, "3/a.png", file_size=1000)


def _big_white_png() -> bytes:
    """4000 x 4000 px, almost all white: a few KB that decode to 16 MB of pixels."""
    a = np.full((4000, 4000), 255, np.uint8)
    a[1000:3000, 1900:2100] = 0
    return png(a)


@functools.cache
def flat_png(side: int = 4000, grey: int = 200) -> bytes:
    """side x side px of one grey, compressed hard: 21 KB that decode to 16 MB at 4000 px."""
    buf = io.BytesIO()
    Image.new("L", (side, side), grey).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def flat_png_zip(limit: int = 20 * 2**20, entries: int = 2000) -> bytes:
    """As many flat 4000x4000 PNGs as fit in a `limit`-byte upload (the Data page's 20 MB) and in
    `entries` (the zip limit), stored, in folders 0-9: 987 of them, 15.8 gigapixels, every
    other check passed (no ratio, 20 MB unpacked)."""
    one = flat_png()
    n = min(entries, limit // (len(one) + 120))  # 120: a stored entry's two headers and its name, twice
    return zip_of([(f"{i % 10}/flat{i}.png", one) for i in range(n)], zipfile.ZIP_STORED)


HOSTILE_ZIPS = [
    ("folder named 12", lambda: zip_of({"12/a.png": digit_png(1)})),
    ("bad CRC member", lambda: flip_in_member(zip_of({"3/a.png": digit_png(3)}, zipfile.ZIP_STORED), "3/a.png")),
    ("encrypted member", lambda: patch(zip_of({"3/a.png": digit_png(3)}), "3/a.png", flags=0x1)),
    ("2,001 entries", lambda: zip_of({f"3/{i}.png": b"" for i in range(2001)}, zipfile.ZIP_STORED)),
    ("nested zip bomb", _nested_zip_bomb),
    ("zip bomb png", _zip_bomb_png),
    ("declares 1,000 bytes, inflates 5 MB", _inflates_beyond_declared),
    ("non-image member", lambda: zip_of({"3/a.png": digit_png(3), "3/notes.txt": b"hello"})),
    ("unsafe path", lambda: zip_of({"../3/a.png": digit_png(3)})),
    ("not a zip", lambda: b"hello, not a zip"),
    ("truncated zip", lambda: zip_of({"3/a.png": digit_png(3)})[:-30]),
    ("image declares 4001 px", lambda: zip_of({"3/a.png": png(np.zeros((10, 4001), np.uint8))})),
    ("PNG that is text", lambda: zip_of({"3/a.png": b"not a png"})),
    ("987 flat 4000 px PNGs in 20 MB", flat_png_zip),
]

HOSTILE_IMAGES = [
    ("text as PNG", lambda: b"hello, not an image"),
    ("PNG header only", lambda: _big_white_png()[:200]),
    ("PNG with random IDAT data", lambda: _garbage_png_idat(_big_white_png())),
    ("GIF", lambda: _gif()),
    ("4001 px wide", lambda: png(np.zeros((10, 4001), np.uint8))),
]


def _garbage_png_idat(data: bytes) -> bytes:
    """The first IDAT chunk's data replaced by random bytes (its length and CRC kept)."""
    out = bytearray(data)
    at = data.find(b"IDAT")
    n = struct.unpack(">I", data[at - 4:at])[0]
    out[at + 4:at + 4 + n] = np.random.default_rng(0).bytes(n)
    return bytes(out)


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (20, 20)).save(buf, "GIF")
    return buf.getvalue()


HOSTILE = ([(n, "model", f) for n, f in HOSTILE_MODELS] + [(n, "zip", f) for n, f in HOSTILE_ZIPS]
           + [(n, "image", f) for n, f in HOSTILE_IMAGES])


def largest_model_bytes() -> bytes:
    """784-2048-2048-2048-2048-10, the largest model within the limits (57 MB of float32)."""
    sizes = (784, 2048, 2048, 2048, 2048, 10)
    rng = np.random.default_rng(0)
    weights = [np.full((a, b), 0.01, np.float32) + rng.normal(0, 0.01, b).astype(np.float32)
               for a, b in zip(sizes[:-1], sizes[1:])]
    return model_bytes(MLP.from_arrays(weights, [np.zeros(b, np.float32) for b in sizes[1:]]))


# Not hostile, but the memory each costs is worth a line in the bench.
LEGIT = [("largest model 784-2048x4-10", "model", largest_model_bytes),
         ("4000 px PNG digit", "image", _big_white_png)]


# -- fuzz ------------------------------------------------------------------------------------
def _mutations(rng: np.random.Generator, good: bytes, n: int):
    for _ in range(n):
        choice = rng.integers(3)
        if choice == 0:
            yield good[: int(rng.integers(len(good)))]
        else:
            out = bytearray(good)
            for at in rng.integers(len(good), size=int(rng.integers(1, 9))):
                out[at] = int(rng.integers(256)) if choice == 1 else out[at] ^ 0xFF
            yield bytes(out)


def fuzz_models(seed: int = 0, n: int = 150):
    """Seeded malformed model files: truncations and byte flips of stored and compressed good
    files, wrong dtypes, non-finite values, hand-made headers with random shapes, random bytes."""
    rng = np.random.default_rng(seed)
    good = good_model_bytes()
    a = _good_arrays()
    yield from _mutations(rng, good, n)
    yield from _mutations(rng, npz(a, compressed=True), n // 3)
    for dtype in (np.float64, np.float16, np.int64, np.uint8, np.complex64, ">f4"):
        key = ["W0", "b0", "W1", "b1"][int(rng.integers(4))]
        yield _with(**{key: a[key].astype(dtype)})
    for value in (np.nan, np.inf, -np.inf):
        w = a["W1"].copy()
        w[rng.integers(w.shape[0]), rng.integers(w.shape[1])] = value
        yield _with(W1=w)
    for _ in range(n // 5):
        key = ["W0", "b0", "W1", "b1", "meta", "layer_sizes", "input_scaling"][int(rng.integers(7))]
        shape = tuple(int(s) for s in rng.integers(0, 2**40, size=int(rng.integers(0, 4))))
        descr = ["<f4", "<f8", "|O", "<i8", "<U9", "|u1", [("a", "<f4")]][int(rng.integers(7))]
        yield _huge_header(key, shape, descr)
    for size in (0, 1, 100, 5000):
        yield rng.bytes(size)


def fuzz_zips(seed: int = 0, n: int = 100):
    """Seeded malformed digit zips: truncations and byte flips of a good one, odd names, bombs."""
    rng = np.random.default_rng(seed)
    good = zip_of({"digits/3/a.png": digit_png(3), "digits/5/b.png": digit_png(5)})
    yield from _mutations(rng, good, n)
    names = ["3/a.png", "12/a.png", "a.png", "3/a.zip", "3/.hidden.png", "__MACOSX/3/._a.png", "3/",
             "C:/3/a.png", "3/a.PNG", "x/9/a.jpeg"]
    for _ in range(n // 4):
        picked = rng.choice(names, size=int(rng.integers(1, 4)))
        yield zip_of({str(name): digit_png(int(rng.integers(10))) for name in picked})
    yield zlib.compress(b"\0" * 2**20)
    yield _zip_bomb_png()


def fuzz_images(seed: int = 0, n: int = 60):
    """Seeded truncations and byte flips of a PNG and a JPEG digit."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.open(io.BytesIO(digit_png(7, 200))).save(buf, "JPEG")
    for good in (digit_png(7, 200), buf.getvalue()):
        yield from _mutations(rng, good, n // 2)
