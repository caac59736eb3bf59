"""Uploaded digit images and .zip archives -> labelled 28x28 samples, refusing bad input.

Imports numpy, Pillow, the standard library and drawing. Every check happens before
anything is returned, so a caller stores all of an upload or none of it.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from .drawing import preprocess_drawing

MAX_SIDE = 4000
MAX_UNZIPPED = 100 * 1024 * 1024
MAX_FILE = 20 * 1024 * 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class UploadError(ValueError):
    """An upload refused; the message names the file and the reason."""


def image_to_digit(data: bytes, name: str) -> np.ndarray:
    """PNG or JPEG bytes -> (28, 28) uint8 prepared like a drawing. UploadError if unusable."""
    if not data:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > MAX_FILE:
        raise UploadError(f"{name}: {len(data):,} bytes is over the {MAX_FILE:,}-byte limit")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in ("PNG", "JPEG"):
                raise UploadError(f"{name}: a {im.format} image; upload PNG or JPEG")
            w, h = im.size  # read from the header, before decoding any pixels
            if w > MAX_SIDE or h > MAX_SIDE:
                raise UploadError(f"{name}: {w}x{h} px is over the {MAX_SIDE}x{MAX_SIDE} limit")
            im.load()
            arr = np.asarray(im.convert("RGBA" if "A" in im.getbands() else "L"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise UploadError(f"{name}: not a readable PNG or JPEG image ({e.__class__.__name__})") from None
    digit = preprocess_drawing(arr)
    if digit is None:
        raise UploadError(f"{name}: the image is blank (no ink found)")
    return digit


def digits_from_zip(data: bytes, name: str = "upload.zip") -> tuple[np.ndarray, np.ndarray]:
    """A .zip with one folder per digit (0/..., 1/..., optionally under one top folder) ->
    images (n, 28, 28) uint8, labels (n,) int64. Refuses unsafe paths and zip bombs."""
    if not data:
        raise UploadError(f"{name}: the file is empty")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UploadError(f"{name}: not a zip archive") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for info in zf.infolist():
            p = PurePosixPath(info.filename.replace("\\", "/"))
            if p.is_absolute() or ".." in p.parts or info.filename.startswith(("/", "\\")) or ":" in p.parts[0]:
                raise UploadError(f"{name}: unsafe path {info.filename!r} in the archive")
        total = sum(i.file_size for i in infos)
        if total > MAX_UNZIPPED:
            raise UploadError(f"{name}: unpacks to {total:,} bytes, over the {MAX_UNZIPPED:,}-byte limit")
        images, labels = [], []
        for info in infos:
            p = PurePosixPath(info.filename)
            if p.suffix.lower() not in IMAGE_SUFFIXES or p.name.startswith("."):
                continue
            label = next((int(part) for part in reversed(p.parts[:-1]) if part in "0123456789" and part), None)
            if label is None:
                raise UploadError(f"{name}: {info.filename!r} is not in a folder named after its digit (0-9)")
            with zf.open(info) as f:
                blob = f.read(MAX_FILE + 1)  # never trust the declared size alone
            images.append(image_to_digit(blob, f"{name}/{info.filename}"))
            labels.append(label)
    if not images:
        raise UploadError(f"{name}: no PNG or JPEG images in folders 0-9")
    return np.stack(images), np.array(labels, dtype=np.int64)


def import_uploads(store, files, source: str = "upload") -> list[int]:
    """files: [(name, bytes, label or None)]: a .zip (labels from its folders) or an image with
    its label. All are checked first; only if every one is good are they stored. -> new ids."""
    images, labels = [], []
    for name, data, label in files:
        if name.lower().endswith(".zip"):
            imgs, labs = digits_from_zip(data, name)
            images.extend(imgs)
            labels.extend(labs.tolist())
        else:
            if label is None or not 0 <= int(label) <= 9:
                raise UploadError(f"{name}: give the digit (0-9) this image shows")
            images.append(image_to_digit(data, name))
            labels.append(int(label))
    if not images:
        raise UploadError("nothing to import")
    return store.add_samples(np.stack(images), labels, source)


def import_model_upload(store, data: bytes, name: str) -> tuple[int, int]:
    """A .npz model upload, checked by load_model (never unpickled), stored as a run of
    origin 'upload' -> (run id, model id)."""
    from .modelfile import load_model
    if not data:
        raise UploadError(f"{name}: the file is empty")
    try:
        model = load_model(data)
    except ValueError as e:
        raise UploadError(f"{name}: {str(e).removeprefix('model file: ')}") from None
    return store.add_uploaded_model(model, name)
