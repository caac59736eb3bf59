"""Uploaded digit images, .zip archives of them and model files -> checked data for the store.

Imports numpy, Pillow, the standard library and the core. Every check happens before anything
is stored, so a caller stores all of an upload or none of it; a refusal is an UploadError whose
message is one sentence naming the file and the reason. Nothing is decoded or unpacked before
the sizes its headers declare are checked, and nothing is read beyond them; an upload (all its
files together) is sized from its images' headers and refused whole before any pixel is decoded
if they come to more than MAX_PIXELS.
"""

from __future__ import annotations

import io
import math
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
from PIL import Image

from .data import DATASETS, Split
from .drawing import preprocess_drawing
from .metrics import evaluate_scaled
from .modelfile import load_model
from .train import dataset_of

MAX_SIDE = 4000
MAX_FILE = 20 * 1024 * 1024
MAX_UNZIPPED = 100 * 1024 * 1024
MAX_ENTRIES = 2000
MAX_RATIO = 100  # PNG and JPEG barely compress again: a zip that does is a bomb
# Decoded pixels in one upload, all its files together: four photos at the 4000x4000 limit, or
# thousands of digit-sized images. A flat 4000x4000 PNG is 21 KB; a 20 MB zip holds 987 of
# them, 15.8 gigapixels that took 55 s to decode (0.055 s each, 2-core machine) before this limit.
MAX_PIXELS = 64_000_000
WORK_SIDE = 1024  # larger images are reduced to this before preparing: memory, not quality
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DIGITS = set("0123456789")
# Pillow's errors on a damaged image: OSError (truncated, decoder), SyntaxError (a broken PNG
# chunk), ValueError (e.g. an over-long text chunk), EOFError, struct.error, zlib.error.
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, struct.error, ValueError)


class UploadError(ValueError):
    """An upload refused; the message names the file and the reason."""


class TooManyPixels(UploadError):
    """The whole upload refused: its images' headers declare more than MAX_PIXELS in all."""


def _too_many(where: str, total: int, what: str) -> TooManyPixels:
    return TooManyPixels(f"{where}: the upload's images come to {total / 1e6:,.1f} megapixels with {what}, "
                         f"over the limit of {MAX_PIXELS // 10**6} megapixels for one upload; upload fewer "
                         "or smaller images")


def _check_bytes(data: bytes, name: str) -> None:
    if not data:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > MAX_FILE:
        raise UploadError(f"{name}: {len(data):,} bytes is over the {MAX_FILE:,}-byte limit")


def _open_image(fp, name: str) -> Image.Image:
    """A file object -> the opened image, its size read from the header and checked: no pixel
    is decoded. Pillow's errors propagate (callers say what they mean)."""
    im = Image.open(fp, formats=("PNG", "JPEG"))
    w, h = im.size
    if w > MAX_SIDE or h > MAX_SIDE:
        im.close()
        raise UploadError(f"{name}: {w}x{h} px is over the {MAX_SIDE}x{MAX_SIDE} limit")
    return im


def image_pixels(data: bytes, name: str) -> int:
    """PNG or JPEG bytes -> width x height, from the header (nothing decoded). UploadError if unusable."""
    _check_bytes(data, name)
    try:
        with _open_image(io.BytesIO(data), name) as im:
            return im.width * im.height
    except UploadError:
        raise
    except _IMAGE_ERRORS:
        raise UploadError(f"{name}: not a readable PNG or JPEG image") from None


def image_to_digit(data: bytes, name: str) -> np.ndarray:
    """PNG or JPEG bytes -> (28, 28) uint8 prepared like a drawing.

    The size is read from the header before any pixel is decoded; images over WORK_SIDE px are
    reduced first. UploadError if unusable.
    """
    _check_bytes(data, name)
    try:
        with _open_image(io.BytesIO(data), name) as im:  # the size checked before any pixel is decoded
            arr = _pixels(im)
    except UploadError:
        raise
    except _IMAGE_ERRORS:
        raise UploadError(f"{name}: not a readable PNG or JPEG image") from None
    digit = preprocess_drawing(arr)
    if digit is None:
        raise UploadError(f"{name}: the image is blank (no ink found)")
    return digit


def preview_digit(data: bytes, name: str) -> np.ndarray:
    """What an uploaded image would be stored as, (28, 28) uint8: the same checks and
    preparation as image_to_digit. UploadError if unusable. (A page shows what prepare_uploads
    returned instead: decoded once, kept for its reruns.)"""
    return image_to_digit(data, name)


def _pixels(im: Image.Image) -> np.ndarray:
    """An opened image -> (H, W, 4) RGBA or (H, W) grey uint8, at most WORK_SIDE px a side."""
    mode = "RGBA" if "A" in im.getbands() else "L"
    factor = math.ceil(max(im.size) / WORK_SIDE)
    if im.format == "JPEG" and factor > 1:
        im.draft(mode, (im.width // factor, im.height // factor))  # decode at a reduced scale
    im.load()
    if im.mode != mode:
        im = im.convert(mode)
    factor = math.ceil(max(im.size) / WORK_SIDE)
    if factor > 1:
        im = im.reduce(factor)
    return np.asarray(im)


def digits_from_zip(data: bytes, name: str = "upload.zip") -> tuple[np.ndarray, np.ndarray]:
    """A .zip with one folder per digit (0/..., 1/..., optionally under one top folder) ->
    images (n, 28, 28) uint8, labels (n,) int64. Refuses unsafe paths, encrypted, damaged or
    nested archives, files that are not images, too many entries, zip bombs, and images whose
    headers declare more than MAX_PIXELS in all (before decoding any)."""
    _zip_pixels(data, name, MAX_PIXELS)
    return _zip_digits(data, name)


def _open_zip(data: bytes, name: str) -> zipfile.ZipFile:
    if not data:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > MAX_UNZIPPED:
        raise UploadError(f"{name}: {len(data):,} bytes is over the {MAX_UNZIPPED:,}-byte limit")
    # Every directory entry starts with these 4 bytes: counting them bounds zipfile's work
    # before it parses the directory (slack for image data that happens to contain them).
    if data.count(b"PK\x01\x02") > 2 * MAX_ENTRIES:
        raise UploadError(f"{name}: more than {MAX_ENTRIES:,} entries; split it into smaller zips")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS:
        raise UploadError(f"{name}: not a zip archive, or a damaged one") from None


def _zip_pixels(data: bytes, name: str, limit: int, before: int = 0) -> int:
    """The pixels a zip's images declare in their headers (each entry unpacked only as far as
    its header). TooManyPixels as soon as `before` plus them passes `limit`."""
    total = before
    with _open_zip(data, name) as zf:
        for info, _ in _checked_entries(zf, name):
            total += _entry_pixels(zf, info, name)
            if total > limit:
                raise _too_many(name, total, repr(info.filename[:80]))
    return total - before


def _zip_digits(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every image of a checked zip decoded and prepared -> (n, 28, 28) uint8, (n,) int64."""
    with _open_zip(data, name) as zf:
        images, labels = [], []
        for info, label in _checked_entries(zf, name):
            images.append(image_to_digit(_read_entry(zf, info, name), f"{name}/{info.filename}"))
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


def _checked_entries(zf: zipfile.ZipFile, name: str) -> list[tuple[zipfile.ZipInfo, int]]:
    """The archive's directory, every entry checked before any is unpacked -> [(image, label)]."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise UploadError(f"{name}: {len(infos):,} entries is over the limit of {MAX_ENTRIES:,}; "
                          "split it into smaller zips")
    picked = []
    for info in infos:
        p, shown = PurePosixPath(info.filename.replace("\\", "/")), repr(info.filename[:80])
        if not p.parts or p.is_absolute() or ".." in p.parts or ":" in p.parts[0] or info.filename[:1] in "/\\":
            raise UploadError(f"{name}: unsafe path {shown} in the archive")
        if info.is_dir() or p.name.startswith(".") or "__MACOSX" in p.parts:
            continue  # folders, and the hidden files macOS adds
        if info.flag_bits & 0x1:
            raise UploadError(f"{name}: {shown} is encrypted; upload a zip without a password")
        if p.suffix.lower() == ".zip":
            raise UploadError(f"{name}: {shown} is a zip inside the zip; upload one zip of images")
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise UploadError(f"{name}: {shown} is not a PNG or JPEG image")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UploadError(f"{name}: {shown} uses an unusual compression method; zip it again")
        if info.file_size > MAX_FILE:
            raise UploadError(f"{name}: {shown} unpacks to {info.file_size:,} bytes, "
                              f"over the {MAX_FILE:,}-byte limit")
        label = next((int(part) for part in reversed(p.parts[:-1]) if part in DIGITS), None)
        if label is None:
            raise UploadError(f"{name}: {shown} is not in a folder named after its digit (0-9)")
        picked.append((info, label))
    unpacked = sum(i.file_size for i, _ in picked)
    if unpacked > MAX_UNZIPPED:
        raise UploadError(f"{name}: unpacks to {unpacked:,} bytes, over the {MAX_UNZIPPED:,}-byte limit")
    packed = sum(i.compress_size for i, _ in picked)
    if unpacked > 2**20 and unpacked > MAX_RATIO * packed:
        raise UploadError(f"{name}: unpacks {packed:,} bytes to {unpacked:,}, a ratio over {MAX_RATIO} "
                          "(a zip bomb)")
    if not picked:
        raise UploadError(f"{name}: no PNG or JPEG images in folders 0-9")
    return picked


def _entry_pixels(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> int:
    """An entry's width x height from its header: Pillow reads from the entry's stream only as
    far as the header, so little of it is unpacked."""
    try:
        with zf.open(info) as f, _open_image(f, f"{name}/{info.filename}") as im:
            return im.width * im.height
    except UploadError:
        raise
    except (zipfile.BadZipFile, zlib.error) as e:
        raise _damaged(info, name, e) from None
    except _IMAGE_ERRORS:
        raise UploadError(f"{name}/{info.filename}: not a readable PNG or JPEG image") from None


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> bytes:
    """An entry's bytes, never more than its checked declared size (zipfile stops there and
    compares the checksum, which catches a declared size smaller than the real one)."""
    try:
        with zf.open(info) as f:
            return f.read(info.file_size + 1)
    except _ZIP_ERRORS as e:
        raise _damaged(info, name, e) from None


def _damaged(info: zipfile.ZipInfo, name: str, e: Exception) -> UploadError:
    if isinstance(e, zipfile.BadZipFile):
        why = "its checksum does not match" if "CRC" in str(e) else "its entry is malformed"
        return UploadError(f"{name}: {info.filename[:80]!r} is damaged ({why})")
    return UploadError(f"{name}: {info.filename[:80]!r} is damaged and cannot be unpacked")


def _digit_label(label) -> int | None:
    ok = isinstance(label, (int, np.integer)) and not isinstance(label, bool) and 0 <= label <= 9
    return int(label) if ok else None


@dataclass(frozen=True)
class Prepared:
    """One uploaded file, checked and prepared like a drawing (what would be stored), or refused."""

    name: str
    images: np.ndarray  # (n, 28, 28) uint8: a zip's digits, or one image's; (0, 28, 28) if refused
    labels: np.ndarray | None  # (n,) int64 from a zip's folders; None for an image (the visitor says)
    pixels: int  # what its headers declare (decoded, if not refused)
    error: str | None = None  # why it cannot be used: one sentence naming it


def _is_zip(name: str) -> bool:
    return name.lower().endswith(".zip")


def prepare_uploads(files) -> list[Prepared]:
    """files: [(name, bytes)], a .zip or a PNG/JPEG each -> one Prepared each, in order.

    First every file's images are sized from their headers: TooManyPixels (the whole upload
    refused, nothing decoded) once they pass MAX_PIXELS in all. Then each file is decoded and
    prepared; a file that cannot be used gets its sentence in .error, and the others are
    still prepared (a page shows which to remove)."""
    total, sized = 0, []
    for name, data in files:
        try:
            if _is_zip(name):
                pixels = _zip_pixels(data, name, MAX_PIXELS, before=total)
            elif total + (pixels := image_pixels(data, name)) > MAX_PIXELS:
                raise _too_many(name, total + pixels, "this image")
        except TooManyPixels:
            raise
        except UploadError as e:
            sized.append((0, str(e)))
        else:
            total += pixels
            sized.append((pixels, None))
    out = []
    for (name, data), (pixels, error) in zip(files, sized):
        if error is None:
            try:
                images, labels = _zip_digits(data, name) if _is_zip(name) else (image_to_digit(data, name)[None], None)
            except UploadError as e:
                error = str(e)
            else:
                out.append(Prepared(name, images, labels, pixels))
                continue
        out.append(Prepared(name, np.zeros((0, 28, 28), np.uint8), None, pixels, error))
    return out


def add_prepared(store, prepared: list[Prepared], labels, owner: str, source: str = "upload") -> list[int]:
    """Store prepared files as `owner`'s: a zip's digits with their folders' labels, an image with
    its entry of `labels` (an int 0-9). All or nothing: UploadError if a file was refused or an
    image has no digit. -> new sample ids."""
    images, digits = [], []
    for p, label in zip(prepared, labels, strict=True):
        if p.error is not None:
            raise UploadError(p.error)
        if p.labels is not None:
            images.extend(p.images)
            digits.extend(p.labels.tolist())
        else:
            if (digit := _digit_label(label)) is None:
                raise UploadError(f"{p.name}: give the digit (0-9) this image shows")
            images.append(p.images[0])
            digits.append(digit)
    if not images:
        raise UploadError("nothing to import")
    return store.add_samples(np.stack(images), digits, source, owner=owner)


def import_uploads(store, files, owner: str, source: str = "upload") -> list[int]:
    """files: [(name, bytes, label or None)]: a .zip (labels from its folders) or an image with
    its label (an int 0-9). All are sized, then checked and prepared; only if every one is good
    are they stored, in one call, as `owner`'s. -> new sample ids."""
    prepared = prepare_uploads([(name, data) for name, data, _ in files])
    return add_prepared(store, prepared, [label for _, _, label in files], owner, source)


@dataclass(frozen=True)
class ModelUpload:
    """What import_model_upload stored, and how good the model really is."""

    run_id: int
    model_id: int
    measured_test: dict | None  # `metrics.evaluate_scaled` on the test split given, else None
    claimed_test_accuracy: float | None  # what the file's own history says (unverified), or None
    dataset: str = "mnist"  # the data set the model reads (its history says; a key of DATASETS)


def _note(name: str, measured: dict | None, claimed: float | None, dataset: str = "mnist") -> str:
    said = f"uploaded as {name}"
    if measured is not None:
        said += f"; {100 * measured['accuracy']:.2f}% on the {DATASETS[dataset].title} test set, measured on upload"
        if claimed is not None and abs(claimed - measured["accuracy"]) > 5e-5:
            said += f" (the file claimed {100 * claimed:.2f}%)"
    return said


def import_model_upload(store, data: bytes, name: str, owner: str,
                        test_split: Split | Callable[[str], Split] | None = None) -> ModelUpload:
    """A .npz model upload, checked by load_model (never unpickled), measured on `test_split`
    if given, then stored as `owner`'s run of origin 'upload'. test_split: the test images of
    the model's data set, or a function from a data set's name (a key of DATASETS, from the
    model's history) to them: a Fashion-MNIST model is measured on Fashion-MNIST."""
    try:
        model = load_model(data, name)
    except ValueError as e:
        raise UploadError(str(e)) from None
    dataset = dataset_of(model)
    if callable(test_split):
        test_split = test_split(dataset)
    measured = None
    if test_split is not None:
        with np.errstate(over="ignore", invalid="ignore"):  # huge weights: inf logits, NaN loss
            measured = evaluate_scaled(model, model.scale_inputs(test_split.images), test_split.labels,
                                       chunk=1000)
    last = model.history.last("test") if model.history is not None else None
    claimed = float(last["accuracy"]) if last is not None else None
    # The file as it was checked is what the store keeps: no second serialisation (57 MB for
    # the largest model), and a download gives back the very bytes uploaded.
    run_id, model_id = store.add_uploaded_model(model, name, owner=owner, blob=data,
                                                note=_note(name, measured, claimed, dataset))
    return ModelUpload(run_id, model_id, measured, claimed, dataset)
