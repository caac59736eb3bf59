"""Hyperparameter sweeps: a grid or a random search over the Train form's choices -> the list of
runs to train. Pure: numpy and the core only (the store and the cluster run them).

A SweepSpec lists the values to try for each choice; `grid` takes every combination, `random`
draws `n` distinct ones with the sweep's own seed.
"""

from __future__ import annotations

import itertools
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
    limits. ValueError naming the first bad value, or a sweep over MAX_RUNS runs."""
    if spec.mode not in ("grid", "random"):
        raise ValueError(f"mode must be 'grid' or 'random', got {spec.mode!r}")
    axes = [spec.hidden] + [getattr(spec, name) for name in SEARCHED]
    for name, values in zip(("hidden", *SEARCHED), axes):
        if not values:
            raise ValueError(f"{name} needs at least one value to try")
    combos = list(itertools.product(*axes))
    if spec.mode == "random":
        if spec.n is None or not 1 <= spec.n <= MAX_RUNS:
            raise ValueError(f"a random sweep needs n from 1 to {MAX_RUNS}, got {spec.n!r}")
        rng = np.random.default_rng(spec.search_seed)
        picks = rng.choice(len(combos), size=min(spec.n, len(combos)), replace=False)
        combos = [combos[i] for i in sorted(picks)]
    if len(combos) > MAX_RUNS:
        raise ValueError(f"this grid has {len(combos)} runs; a sweep may have at most {MAX_RUNS} "
                         "(fewer values, or a random search)")
    out = []
    for hidden, *values in combos:
        sizes = check_model_limits((784, *hidden, 10))
        config = replace(TrainConfig(train_size=spec.train_size), **dict(zip(SEARCHED, values)))
        check_run_size(sizes, config, n_train)
        out.append((tuple(hidden), config))
    return out


def varied(spec: SweepSpec) -> list[str]:
    """The choices the sweep tries more than one value of (for tables and charts)."""
    return [name for name in ("hidden", *SEARCHED) if len(getattr(spec, name)) > 1]
