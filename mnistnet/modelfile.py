"""save_model / load_model: versioned .npz model files, never pickled.

Imports numpy and the core. Layout (format version 1):
  format        () str      "mnistnet-model"
  version       () int64    FORMAT_VERSION
  layer_sizes   (L+1,) int64
  input_scaling (2,) float64  mean, std
  W0, b0, ...   float32     weights (in, out) and biases (out,) of each layer
  meta          () str      JSON: {"history": History.to_dict() or null}
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .network import MLP, check_layer_sizes
from .train import History

FORMAT = "mnistnet-model"
FORMAT_VERSION = 1


def model_bytes(model: MLP) -> bytes:
    """The .npz file of `model` as bytes (what save_model writes)."""
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "layer_sizes": np.array(model.layer_sizes, dtype=np.int64),
        "input_scaling": np.array([model.input_mean, model.input_std], dtype=np.float64),
        "meta": np.array(json.dumps({"history": _history_dict(model)})),
    }
    for i, (W, b) in enumerate(zip(model.weights, model.biases)):
        arrays[f"W{i}"], arrays[f"b{i}"] = W, b
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _history_dict(model: MLP):
    hist = getattr(model, "history", None)
    return hist.to_dict() if hist is not None else None


def save_model(model: MLP, path) -> Path:
    """Write `model` (with its history, if any) to `path` atomically: a temp file, then rename."""
    path = Path(path)
    data = model_bytes(model)
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


def load_model(source) -> MLP:
    """A path, bytes or binary file object of a .npz written by save_model -> MLP.

    Raises ValueError saying what is wrong for a pickled, truncated, mis-shaped,
    non-finite, foreign or newer-version file.
    """
    name = str(source) if isinstance(source, (str, os.PathLike)) else "model file"
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        with np.load(source, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise ValueError(f"{name}: contains pickled objects, which mnistnet never loads") from None
        raise ValueError(f"{name}: not a readable .npz file ({e})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise ValueError(f"{name}: not a readable .npz file, truncated or corrupt ({e})") from None
    return _model_from_arrays(arrays, name)


def _scalar(arrays: dict, key: str, kind: str, name: str):
    if key not in arrays:
        raise ValueError(f"{name}: missing '{key}' (not an mnistnet model file)")
    a = arrays[key]
    if a.shape != () or a.dtype.kind != kind:
        raise ValueError(f"{name}: '{key}' has shape {a.shape} and dtype {a.dtype}, expected a scalar")
    return a.item()


def _model_from_arrays(arrays: dict, name: str) -> MLP:
    if _scalar(arrays, "format", "U", name) != FORMAT:
        raise ValueError(f"{name}: format is {arrays['format'].item()!r}, expected {FORMAT!r}")
    version = _scalar(arrays, "version", "i", name)
    if version > FORMAT_VERSION:
        raise ValueError(f"{name}: format version {version} is newer than this mnistnet reads "
                         f"({FORMAT_VERSION}); upgrade mnistnet to load it")
    if version < 1:
        raise ValueError(f"{name}: unknown format version {version}")
    sizes = arrays.get("layer_sizes")
    if sizes is None or sizes.ndim != 1 or sizes.dtype.kind != "i":
        raise ValueError(f"{name}: 'layer_sizes' missing or not a vector of integers")
    sizes = check_layer_sizes(sizes.tolist())
    scaling = arrays.get("input_scaling")
    if scaling is None or scaling.shape != (2,) or not np.isfinite(scaling).all() or scaling[1] <= 0:
        raise ValueError(f"{name}: 'input_scaling' must be 2 finite numbers (mean, std > 0)")
    model = MLP(sizes, seed=0, input_mean=float(scaling[0]), input_std=float(scaling[1]))
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        for key, shape, dst in ((f"W{i}", (fan_in, fan_out), model.weights), (f"b{i}", (fan_out,), model.biases)):
            a = arrays.get(key)
            if a is None:
                raise ValueError(f"{name}: missing array '{key}'")
            if a.shape != shape or a.dtype != np.float32:
                raise ValueError(f"{name}: '{key}' has shape {a.shape} and dtype {a.dtype}, "
                                 f"expected {shape} float32")
            if not np.isfinite(a).all():
                raise ValueError(f"{name}: '{key}' contains NaN or infinite values")
            dst[i] = a.copy()
    extra = set(arrays) - {"format", "version", "layer_sizes", "input_scaling", "meta"} - {
        f"{p}{i}" for i in range(len(sizes) - 1) for p in "Wb"}
    if extra:
        raise ValueError(f"{name}: unexpected arrays {sorted(extra)} for layer sizes {sizes}")
    try:
        meta = json.loads(_scalar(arrays, "meta", "U", name))
        hist = meta.get("history")
        model.history = History.from_dict(hist) if hist else None
    except (json.JSONDecodeError, TypeError, AttributeError) as e:
        raise ValueError(f"{name}: unreadable 'meta' ({e})") from None
    return model
