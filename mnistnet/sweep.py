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

from .data import DATASETS
from .net import canonical, mlp_sizes
from .net import plan as net_plan
from .network import check_model_limits
from .train import TrainConfig, check_run_size

MAX_RUNS = 32  # runs in one sweep
SEARCHED = ("learning_rate", "batch_size", "epochs", "momentum", "lr_schedule", "weight_decay",
            "shift_pixels", "seed")


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep tries: networks (each hidden widths, a tuple, or a line with conv layers,
    a str as net.canonical writes it) and TrainConfig values, on one data set."""

    hidden: tuple[tuple[int, ...] | str, ...] = ((512, 256),)
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
    dataset: str = "mnist"  # a key of data.DATASETS, for every run
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        d = dict(d)
        d["hidden"] = tuple(network(h) for h in d.get("hidden", ()))
        for name in SEARCHED:
            if name in d:
                d[name] = tuple(d[name])
        return cls(**d)


def network(value) -> tuple[int, ...] | str:
    """One network of a sweep: hidden widths (a sequence of ints) or a line ('conv 8x5 - pool -
    dense 128'); a line of dense ReLU layers only becomes its widths. ValueError names a bad token."""
    if isinstance(value, str):
        sizes = mlp_sizes(value)  # ValueError names a bad token
        return tuple(sizes[1:-1]) if sizes is not None else canonical(value)
    return tuple(int(w) for w in value)


def plan(spec: SweepSpec, n_train: int = 50_000) -> list[tuple[tuple[int, ...] | str, TrainConfig]]:
    """The sweep's runs: [(hidden sizes or a network's line, TrainConfig)], each checked against
    the Train form's limits. ValueError naming the first bad value, or a sweep over MAX_RUNS runs.

    Counts before it builds: a grid over MAX_RUNS is refused from the product of the lengths
    (8 values in each of 9 choices would be 134 million tuples), and a random search decodes
    only the indices it draws."""
    if spec.mode not in ("grid", "random"):
        raise ValueError(f"mode must be 'grid' or 'random', got {spec.mode!r}")
    if spec.dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {spec.dataset!r}")
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
    for arch, *values in combos:
        if isinstance(arch, str):
            net_plan(arch)  # shapes and limits only: ValueError names a bad token or limit
        else:
            arch = tuple(arch)
            check_model_limits((784, *arch, 10))
        config = replace(TrainConfig(train_size=spec.train_size, dataset=spec.dataset), **dict(zip(SEARCHED, values)))
        check_run_size(arch if isinstance(arch, str) else (784, *arch, 10), config, n_train)
        out.append((arch, config))
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
