"""The Train page's form values -> (hidden sizes, TrainConfig), with one message per bad field.

Imports mnistnet only. The core's own validation is the single source of truth: each field is
checked by building a TrainConfig (or layer sizes) with just that value changed, so the
message next to a field is the core's ValueError naming the value.
"""

from __future__ import annotations

from dataclasses import replace

from mnistnet import TrainConfig, preset
from mnistnet.network import check_layer_sizes

MAX_HIDDEN_LAYERS = 4
MAX_LAYER_SIZE = 2048  # beyond this one run on 2 cores takes many minutes
PRESET_LABELS = {"seed": "Seed report", "best": "Best"}
CONFIG_FIELDS = ("learning_rate", "batch_size", "epochs", "seed", "train_size", "momentum",
                 "lr_schedule", "weight_decay", "shift_pixels")


def preset_values(name: str, n_train: int = 50_000) -> dict:
    """Form values of a preset: hidden (list of sizes) plus the TrainConfig fields."""
    hidden, config = preset(name)
    values = {f: getattr(config, f) for f in CONFIG_FIELDS}
    values["hidden"] = list(hidden)
    values["train_size"] = config.train_size or n_train
    return values


def hidden_error(size) -> str | None:
    """The message for a bad hidden-layer size, or None."""
    try:
        check_layer_sizes((784, size, 10))
    except ValueError as e:
        return str(e)
    if size > MAX_LAYER_SIZE:
        return f"hidden layer sizes are capped at {MAX_LAYER_SIZE} here, got {size}"
    return None


def field_error(name: str, value, n_train: int) -> str | None:
    """The message for a bad value of TrainConfig field `name`, or None."""
    try:
        replace(TrainConfig(), **{name: value})
    except ValueError as e:
        return str(e)
    if name == "train_size" and value > n_train:
        return f"train_size must be at most {n_train:,} (the training set), got {value:,}"
    return None


def validate(values: dict, n_train: int) -> tuple[tuple[int, ...] | None, TrainConfig | None, dict]:
    """Form values -> (hidden sizes, config, errors). errors maps a field ("hidden.0",
    "learning_rate", ...) to its message; hidden and config are None when there are errors."""
    errors = {f"hidden.{i}": m for i, s in enumerate(values["hidden"]) if (m := hidden_error(s))}
    errors.update({f: m for f in CONFIG_FIELDS if (m := field_error(f, values[f], n_train))})
    if errors:
        return None, None, errors
    config = TrainConfig(**{f: values[f] for f in CONFIG_FIELDS})
    return tuple(int(s) for s in values["hidden"]), config, {}
