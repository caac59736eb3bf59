"""Hyperparameter sweeps: a grid or a random search over the Train form's choices -> the list of
runs to train. Pure: numpy and the core only (the store and the cluster run them).

A SweepSpec lists the values to try for each choice; `grid` takes every combination, `random`
draws `n` distinct ones with the sweep's own seed. The grid is never built: its size is the
product of the lengths, and a random pick is an index into it, decoded by mixed radix.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .network import check_model_limits
from .train import TrainConfig, check_run_size

MAX_RUNS = 32  # runs in one sweep
SEARCHED = ("learning_rate", "batch_size", "epochs", "momentum", "lr_schedule", "weight_decay",
            "shift_pixels", "seed")


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep tries: hidden sizes (each a tuple of widths) and TrainConfig values."""

    hidden: tuple[tuple[int, ...], ...] = ((512, 256),)
    learning_rate: tuple[float, ...] = (0.13,)
    batch_size: tuple[int, ...] = (50,)
    epochs: tuple[int, ...] = (2,)
    momentum: tuple[float, ...] = (0.0,)
    lr_schedule: tuple[str, ...] = ("constant",)
    weight_decay: tuple[float, ...] = (0.0,)
    shift_pixels: tuple[int, ...] = (0,)
    seed: tuple[int, ...] = (0,)
    mode: str = "grid"  # or "random"
    n: int | None = None  # random: how many runs
    search_seed: int = 0  # random: which ones
    train_size: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        d = dict(d)
        d["hidden"] = tuple(tuple(int(w) for w in h) for h in d.get("hidden", ()))
        for name in SEARCHED:
            if name in d:
                d[name] = tuple(d[name])
        return cls(**d)


def plan(spec: SweepSpec, n_train: int = 50_000) -> list[tuple[tuple[int, ...], TrainConfig]]:
    """The sweep's runs: [(hidden sizes, TrainConfig)], each checked against the Train form's
    limits. ValueError naming the first bad value, or a sweep over MAX_RUNS runs.

    Counts before it builds: a grid over MAX_RUNS is refused from the product of the lengths
    (8 values in each of 9 choices would be 134 million tuples), and a random search decodes
    only the indices it draws."""
    if spec.mode not in ("grid", "random"):
        raise ValueError(f"mode must be 'grid' or 'random', got {spec.mode!r}")
    axes = [spec.hidden] + [getattr(spec, name) for name in SEARCHED]
    for name, values in zip(("hidden", *SEARCHED), axes):
        if not values:
            raise ValueError(f"{name} needs at least one value to try")
    count = math.prod(len(a) for a in axes)  # a Python int: exact however large
    if spec.mode == "random":
        if spec.n is None or not 1 <= spec.n <= MAX_RUNS:
            raise ValueError(f"a random sweep needs n from 1 to {MAX_RUNS}, got {spec.n!r}")
        combos = [combination(axes, i) for i in sample_indices(count, min(spec.n, count), spec.search_seed)]
    elif count > MAX_RUNS:
        raise ValueError(f"this grid has {count:,} runs; a sweep may have at most {MAX_RUNS} "
                         "(fewer values, or a random search)")
    else:
        combos = list(itertools.product(*axes))
    out = []
    for hidden, *values in combos:
        sizes = check_model_limits((784, *hidden, 10))
        config = replace(TrainConfig(train_size=spec.train_size), **dict(zip(SEARCHED, values)))
        check_run_size(sizes, config, n_train)
        out.append((tuple(hidden), config))
    return out


def sample_indices(count: int, k: int, seed: int) -> list[int]:
    """k distinct indices in [0, count), sorted, drawn with the sweep's own Generator; memory
    O(k) whatever count is. Below 2**63, numpy's choice (Floyd's algorithm for a small k: the
    same picks as when the grid was a list); above it, random integers of count's bit length,
    redrawn when out of range or already drawn."""
    assert 0 <= k <= count, (k, count)
    rng = np.random.default_rng(seed)
    if count < 2**63:
        return sorted(int(i) for i in rng.choice(count, size=k, replace=False))
    bits = (count - 1).bit_length()
    picks: set[int] = set()
    while len(picks) < k:
        i = int.from_bytes(rng.bytes((bits + 7) // 8), "little") >> (-bits % 8)  # bits random bits
        if i < count:
            picks.add(i)
    return sorted(picks)


def combination(axes: list[tuple], index: int) -> tuple:
    """The index-th tuple of itertools.product(*axes), without building the product: the
    index in mixed radix, the last axis varying fastest."""
    out = []
    for values in reversed(axes):
        index, digit = divmod(index, len(values))
        out.append(values[digit])
    assert index == 0, "index beyond the product"
    return tuple(reversed(out))


def varied(spec: SweepSpec) -> list[str]:
    """The choices the sweep tries more than one value of (for tables and charts)."""
    return [name for name in ("hidden", *SEARCHED) if len(getattr(spec, name)) > 1]
