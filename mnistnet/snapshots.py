"""Weight snapshots through training: what the network was at epoch 0, early in the first
epoch and at the end of each epoch, kept small (float16, thinned) and in a versioned format.

Imports numpy, the standard library and mnistnet.network. The policy, in one place:
- A run takes a snapshot before its first step (epoch 0.0), once early in the first epoch
  (after about 5% of its batches: a fraction such as 0.05) and after each epoch (n, also for a
  stopped, partial epoch).
- A run keeps at most `capacity(layer_sizes)` of them: MAX_SNAPSHOTS (24), and no more bytes
  of float16 than `budget_bytes`, the room the largest model leaves in a model file, so a model
  file with its snapshots is never larger than the largest plain model file and can always be
  uploaded again. 784-512-256-10 keeps 24 (1.1 MB each), 784-2048-2048-10 keeps 2 and models
  over 9.5 million parameters keep none.
- Over that, `thin` keeps the last, the first (0.0) and the early one, in that priority, and
  spreads the rest evenly between; `retained` applies it while a run trains, so a run never
  holds more than the capacity at any moment and ends with the same set as `thin` of all.

Format (`encode`, version 1), like llm.c's checkpoints a magic line, a header, raw data:
  MAGIC, a little-endian uint32 n, n bytes of UTF-8 JSON
  {"version": 1, "layer_sizes": [...], "epochs": [...], "dtype": "<f2"},
  then per snapshot per layer W (fan_in, fan_out) then b (fan_out,), float16, C order.
Nothing is pickled or decompressed; `decode` checks the header and that the data is exactly
the size it promises before it makes a single array.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .network import MAX_PARAMETERS, MLP, check_model_limits, parameter_count

FORMAT_VERSION = 1
MAGIC = b"mnistnet-snapshots\n"
MAX_SNAPSHOTS = 24
EARLY_FRACTION = 0.05  # of the first epoch's batches, for the early snapshot
MAX_HEADER_BYTES = 4096  # 24 epochs and 6 layer sizes take a few hundred
_DTYPE = np.dtype("<f2")
_F16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value to compare by
class Snapshot:
    """The parameters at one moment of training.

    epoch: 0.0 = the initial weights, a fraction = early in the first epoch, n = end of epoch n.
    weights[l]: (fan_in, fan_out) float32, biases[l]: (fan_out,) float32, as MLP holds them.
    """

    epoch: float
    weights: list[np.ndarray]
    biases: list[np.ndarray]

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return (self.weights[0].shape[0], *(W.shape[1] for W in self.weights))


def take(model: MLP, epoch: float) -> Snapshot:
    """A copy of `model`'s parameters now, as the snapshot of `epoch` (finite, >= 0)."""
    if isinstance(epoch, bool) or not isinstance(epoch, (int, float)) or not math.isfinite(epoch) or epoch < 0:
        raise ValueError(f"epoch must be a finite number >= 0, got {epoch!r}")
    return Snapshot(float(epoch), [W.copy() for W in model.weights], [b.copy() for b in model.biases])


def early_batch(batches: int) -> int | None:
    """The batch (1-based) after which the first epoch's early snapshot is taken: about
    EARLY_FRACTION of `batches`, at least 1; None when that would be the whole epoch."""
    b = max(1, round(EARLY_FRACTION * batches))
    return b if b < batches else None


# -- the policy --------------------------------------------------------------------------------
def snapshot_bytes(layer_sizes) -> int:
    """Bytes of one snapshot's float16 weights and biases."""
    return _DTYPE.itemsize * parameter_count(layer_sizes)


def budget_bytes(layer_sizes) -> int:
    """The float16 bytes a model of these sizes may spend on snapshots: what its float32
    parameters leave of the largest model's (so model plus snapshots fit one model file)."""
    return 4 * (MAX_PARAMETERS - parameter_count(layer_sizes))


def capacity(layer_sizes) -> int:
    """How many snapshots a model of these sizes keeps at most (0 for the largest models)."""
    return min(MAX_SNAPSHOTS, budget_bytes(layer_sizes) // snapshot_bytes(layer_sizes))


def thin(epochs: Sequence[float], limit: int) -> list[float]:
    """The at most `limit` epochs kept of `epochs`, ascending.

    Priority: the last, the first (normally 0.0), the early one (the first in (0, 1)); the
    remaining places go to the others spread evenly between them (by position, and the others
    of a run are the whole epochs 1, 2, ..., so by epoch too).
    """
    epochs = sorted(set(float(e) for e in epochs))
    n = len(epochs)
    if n <= limit:
        return epochs
    if limit <= 0:
        return []
    must = [n - 1, 0] + [i for i, e in enumerate(epochs) if 0 < e < 1][:1]
    must = list(dict.fromkeys(must))[:limit]
    others = [i for i in range(n) if i not in must]
    rest = limit - len(must)
    # j-th of `rest` points spaced (m+1)/(rest+1) > 1 apart: rounding never picks one twice
    step = (len(others) + 1) / (rest + 1)
    picked = [others[math.floor(j * step - 0.5)] for j in range(1, rest + 1)]
    return [epochs[i] for i in sorted(must + picked)]


def retained(epochs: Sequence[float], planned_epochs: int, limit: int) -> list[float]:
    """While a run trains: which of the snapshots kept so far (`epochs`, with the newest) to
    go on keeping, when the run plans `planned_epochs` epochs.

    -> those that `thin` keeps of every epoch the run has and will have a snapshot of (the
    ones kept, and all whole epochs 1 to `planned_epochs`), plus the newest. Never more than
    `limit`: the newest only adds to a target whose last epoch is still to come. A run that
    ends as planned keeps exactly `thin` of all its epochs; a stopped one, the target's
    epochs up to where it stopped and that one.
    """
    have = sorted(set(float(e) for e in epochs))
    if not have or limit <= 0:
        return []
    newest = have[-1]
    whole = range(1, max(planned_epochs, math.floor(newest)) + 1)
    target = set(thin(set(have) | {float(k) for k in whole}, limit))
    return [e for e in have if e in target or e == newest]


# -- the format --------------------------------------------------------------------------------
def encode(snapshots: Sequence[Snapshot]) -> bytes:
    """Snapshots of one network, ascending epochs, at most its `capacity` -> bytes (format
    version 1). Weights beyond float16's range (|w| > 65504) are clipped to it.
    ValueError for none, mixed layer sizes, unordered epochs, too many or non-finite values."""
    snaps = list(snapshots)
    if not snaps:
        raise ValueError("there are no snapshots to encode")
    sizes = check_model_limits(snaps[0].layer_sizes)
    epochs = [s.epoch for s in snaps]
    _check_epochs(epochs, capacity(sizes))
    parts = []
    for s in snaps:
        if s.layer_sizes != sizes or len(s.biases) != len(s.weights):
            raise ValueError(f"snapshot of epoch {s.epoch:g} is of a {_name(s.layer_sizes)} network, "
                             f"not {_name(sizes)}")
        for W, b in zip(s.weights, s.biases):
            if b.shape != (W.shape[1],):
                raise ValueError(f"snapshot of epoch {s.epoch:g} has a bias of shape {b.shape} for a "
                                 f"weight matrix of shape {W.shape}")
            for a in (W, b):
                if not np.isfinite(a).all():
                    raise ValueError(f"snapshot of epoch {s.epoch:g} has NaN or infinite values")
                parts.append(np.clip(a, -_F16_MAX, _F16_MAX).astype(_DTYPE).tobytes())
    header = json.dumps({"version": FORMAT_VERSION, "layer_sizes": list(sizes), "epochs": epochs,
                         "dtype": _DTYPE.str}).encode()
    return b"".join([MAGIC, struct.pack("<I", len(header)), header, *parts])


def decode(data, layer_sizes=None) -> list[Snapshot]:
    """Bytes of `encode` -> the snapshots, arrays float32 (converted from the stored float16).

    `layer_sizes`, if given, is the network they must be of. ValueError, a plain sentence
    fragment without a file name, for anything else: another format, a newer version, a bad
    header, sizes over the network limits, epochs not ascending or over the capacity, data of
    the wrong length, NaN or infinite values.
    """
    data = memoryview(data).cast("B")
    start = len(MAGIC) + 4
    if len(data) < start or bytes(data[:len(MAGIC)]) != MAGIC:
        raise ValueError("not mnistnet snapshots (the magic line is missing)")
    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    if n > MAX_HEADER_BYTES or start + n > len(data):
        raise ValueError(f"the snapshots' header declares {n:,} bytes, over {MAX_HEADER_BYTES:,} or past the end")
    sizes, epochs = _header(bytes(data[start:start + n]))
    if layer_sizes is not None and sizes != tuple(layer_sizes):
        raise ValueError(f"the snapshots are of a {_name(sizes)} network, not {_name(layer_sizes)}")
    per = parameter_count(sizes)
    payload = data[start + n:]
    if len(payload) != len(epochs) * per * _DTYPE.itemsize:
        raise ValueError(f"the snapshots hold {len(payload):,} bytes of weights, their header says "
                         f"{len(epochs) * per * _DTYPE.itemsize:,}")
    flat = np.frombuffer(payload, _DTYPE).reshape(len(epochs), per)  # a view: nothing copied yet
    out = []
    for k, epoch in enumerate(epochs):
        if not np.isfinite(flat[k]).all():
            raise ValueError(f"the snapshot of epoch {epoch:g} has NaN or infinite values")
        weights, biases, at = [], [], 0
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            weights.append(flat[k, at:at + fan_in * fan_out].reshape(fan_in, fan_out).astype(np.float32))
            at += fan_in * fan_out
            biases.append(flat[k, at:at + fan_out].astype(np.float32))
            at += fan_out
        out.append(Snapshot(epoch, weights, biases))
    return out


def _header(raw: bytes) -> tuple[tuple[int, ...], list[float]]:
    try:
        h = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError("the snapshots' header is not readable JSON") from None
    keys = ("version", "layer_sizes", "epochs", "dtype")
    if not isinstance(h, dict) or sorted(h) != sorted(keys):
        raise ValueError(f"the snapshots' header must hold exactly {', '.join(keys)}")
    version = h["version"]
    if not _is_int(version) or version < 1:
        raise ValueError(f"unknown snapshots format version {str(version)[:20]}")
    if version > FORMAT_VERSION:
        raise ValueError(f"snapshots format version {version} is newer than this mnistnet reads "
                         f"({FORMAT_VERSION}); upgrade mnistnet to load them")
    if h["dtype"] != _DTYPE.str:
        raise ValueError(f"the snapshots' dtype is {str(h['dtype'])[:20]!r}, expected {_DTYPE.str!r} (float16)")
    raw_sizes = h["layer_sizes"]
    if not isinstance(raw_sizes, list) or not all(_is_int(s) for s in raw_sizes):
        raise ValueError("the snapshots' layer sizes must be a list of integers")
    try:
        sizes = check_model_limits(raw_sizes)
    except ValueError as e:
        raise ValueError(f"the snapshots are of a network mnistnet does not load ({e})") from None
    epochs = h["epochs"]
    if not isinstance(epochs, list):
        raise ValueError("the snapshots' epochs must be a list of numbers")
    _check_epochs(epochs, capacity(sizes))
    return sizes, [float(e) for e in epochs]


def _check_epochs(epochs: list, limit: int) -> None:
    if not epochs:
        raise ValueError("there are no snapshots")
    if len(epochs) > limit:
        raise ValueError(f"{len(epochs)} snapshots is over the {limit} a model of this size keeps")
    if not all(_is_real(e) and e >= 0 for e in epochs):
        raise ValueError("the snapshots' epochs must be finite numbers >= 0")
    if any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise ValueError("the snapshots' epochs must be in ascending order, each once")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**53


def _is_real(v) -> bool:
    return _is_int(v) or isinstance(v, float) and math.isfinite(v)


def _name(sizes) -> str:
    return "-".join(map(str, sizes))
