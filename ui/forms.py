"""The Train page's form values -> (hidden sizes, TrainConfig), with one message per bad field.

Imports mnistnet only. The core's own validation is the single source of truth: each field is
checked by building a TrainConfig (or layer sizes) with just that value changed, and the
message names the field as the form does ("Batch size", not "batch_size").
"""

from __future__ import annotations

from dataclasses import replace

from mnistnet import TrainConfig, preset
from mnistnet.data import DATASETS
from mnistnet.net import canonical
from mnistnet.network import MAX_HIDDEN_LAYERS, MAX_LAYER_SIZE, check_model_limits
from mnistnet.presets import preset_summary
from mnistnet.train import MAX_BATCH, MAX_EPOCHS, MAX_LEARNING_RATE, MAX_SEED, check_run_size

PRESET_LABELS = {"seed": "Seed report", "default": "Default", "quick": "Quick", "best": "Best", "cnn": "CNN",
                 "cnn-best": "Best CNN"}
LABELS = {"learning_rate": "Learning rate", "batch_size": "Batch size", "epochs": "Epochs", "seed": "Seed",
          "train_size": "Training images", "momentum": "Momentum", "lr_schedule": "Learning-rate schedule",
          "weight_decay": "Weight decay", "shift_pixels": "Random shifts", "rotate_degrees": "Rotation",
          "scale": "Scaling", "shear_degrees": "Slant", "translate_pixels": "Translation",
          "thickness": "Stroke thickness", "elastic_alpha": "Elastic distortion",
          "elastic_sigma": "Elastic smoothness", "flip": "Mirroring", "dataset": "Data set"}
CONFIG_FIELDS = tuple(LABELS)
__all__ = ["MAX_HIDDEN_LAYERS", "MAX_LAYER_SIZE", "MAX_SEED", "MAX_BATCH", "MAX_EPOCHS", "MAX_LEARNING_RATE",
           "validate", "field_error", "hidden_error", "net_error", "preset_values", "parse_seed", "DATASETS",
           "preset_summary"]


def parse_seed(text) -> int | str:
    """The Seed box's text -> an int, or the text back if it is not a whole number."""
    t = str(text).strip().replace(",", "").replace("_", "")
    return int(t) if t.isdigit() and len(t) < 40 else str(text)


def _words(message: str, field: str) -> str:
    """The core's 'batch_size must be ...' -> 'Batch size must be ...'."""
    return message.replace(field, LABELS.get(field, field), 1).replace(" or None", "")


def preset_values(name: str, n_train: int = 50_000, dataset: str = "mnist") -> dict:
    """Form values of a preset's recipe for `dataset`: hidden (list of sizes), net (its line,
    "" for dense layers) plus the TrainConfig fields."""
    arch, config = preset(name, dataset)
    values = {f: getattr(config, f) for f in CONFIG_FIELDS}
    values["hidden"], values["net"] = ([128], arch) if isinstance(arch, str) else (list(arch), "")
    values["train_size"] = config.train_size or n_train
    return values


def hidden_error(size) -> str | None:
    """The message for a bad hidden-layer size, or None."""
    try:
        check_model_limits((784, size, 10))
    except ValueError as e:
        return str(e)[:1].upper() + str(e)[1:]
    return None


def net_error(line: str) -> str | None:
    """The message for a bad network line ("" is fine: the dense layers), or None."""
    if not str(line or "").strip():
        return None
    try:
        check_run_size(str(line), TrainConfig(epochs=1), 1)  # builds its shapes: names a bad token or limit
    except ValueError as e:
        return "Network: " + str(e)
    return None


def field_error(name: str, value, n_train: int) -> str | None:
    """The message for a bad value of TrainConfig field `name`, or None."""
    if value is None or value == "":
        return f"{LABELS[name]} needs a value"
    if name == "seed":
        value = parse_seed(value)
        if isinstance(value, str):
            return f"Seed must be a whole number from 0 to {MAX_SEED:,}, got {value[:40]!r}"
    try:
        replace(TrainConfig(), **{name: value})
    except ValueError as e:
        return _words(str(e), name)
    if name == "train_size" and value > n_train:
        return f"Training images must be at most {n_train:,} (the training set), got {value:,}"
    return None


def validate(values: dict, n_train: int) -> tuple[tuple[int, ...] | str | None, TrainConfig | None, dict]:
    """Form values -> (hidden sizes, or the network's line when "net" holds one; config;
    errors). errors maps a field ("hidden.0", "net", "learning_rate", ..., "size" for the
    whole run) to its message; the first two are None when there are errors."""
    line = str(values.get("net") or "").strip()
    if line:
        errors = {"net": m} if (m := net_error(line)) else {}
    else:
        errors = {f"hidden.{i}": m for i, s in enumerate(values["hidden"]) if (m := hidden_error(s))}
    errors.update({f: m for f in CONFIG_FIELDS if (m := field_error(f, values[f], n_train))})
    if errors:
        return None, None, errors
    config = TrainConfig(**{f: parse_seed(values[f]) if f == "seed" else values[f] for f in CONFIG_FIELDS})
    arch = canonical(line) if line else tuple(int(s) for s in values["hidden"])
    try:
        check_run_size(arch if line else (784, *arch, 10), config, n_train)
    except ValueError as e:
        return None, None, {"size": str(e)[:1].upper() + str(e)[1:]}
    return arch, config, {}
