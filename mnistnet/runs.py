"""Recorded training: every run in the store as it happens, and fine-tuning on user digits.

Imports the core and the store. A run row is written at start, each epoch's metrics as the
epoch ends (its own transaction, so a crash loses at most the running epoch), and the model
at the end, on Stop and after a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .data import MNIST, Split
from .metrics import evaluate_scaled
from .network import MLP
from .store import Store
from .train import History, TrainConfig, TrainingDiverged, train


@dataclass
class RecordedRun:
    run_id: int
    model_id: int | None
    history: History


def train_recorded(store: Store, model: MLP, data: MNIST, config: TrainConfig, origin: str,
                   on_progress=None, should_stop=None) -> RecordedRun:
    """`train` with the run recorded in `store`; re-raises TrainingDiverged after recording it."""
    run_id = store.start_run(model.layer_sizes, config.to_dict(), origin)

    def progress(p):
        if p.epoch_record is not None:
            store.add_epoch(run_id, p.epoch_record)
        if on_progress:
            on_progress(p)
    try:
        hist = train(model, data, config, progress, should_stop)
    except TrainingDiverged as e:
        keep = model if model.history and model.history.epochs else None
        store.end_run(run_id, "failed", keep, error=str(e))
        raise
    except BaseException as e:  # Ctrl-C or a bug: the run did not finish
        store.end_run(run_id, "interrupted", None, error=f"{type(e).__name__}: {e}")
        raise
    model_id = store.end_run(run_id, hist.status, model)
    return RecordedRun(run_id, model_id, hist)


def user_samples(store: Store) -> Split:
    """The user's labelled drawings and uploads: (n, 28, 28) uint8 and (n,) int64."""
    return store.load_split("user")


@dataclass
class FineTuneResult:
    run: RecordedRun
    user_before: dict  # metrics on the user samples before / after
    user_after: dict
    test_before: dict  # MNIST test metrics before / after
    test_after: dict


def fine_tune(store: Store, model: MLP, data: MNIST, user: Split, epochs: int = 1,
              learning_rate: float = 0.02, user_share: float = 0.05, seed: int = 0,
              on_progress=None) -> FineTuneResult:
    """Continue training `model` in place on MNIST train mixed with the user's samples.

    The user samples are repeated so they make up about `user_share` of each epoch; the
    learning rate is small so MNIST accuracy is kept. Recorded as a run with origin finetune.
    """
    if len(user) == 0:
        raise ValueError("no labelled drawings or uploads to fine-tune on: correct a few drawings first")
    repeat = max(1, round(user_share * len(data.train) / len(user)))
    images = np.concatenate([data.train.images, np.repeat(user.images, repeat, axis=0)])
    labels = np.concatenate([data.train.labels, np.repeat(user.labels, repeat)])
    mixed = MNIST(train=Split(images, labels), val=data.val, test=data.test)

    def measure(split: Split) -> dict:
        return evaluate_scaled(model, model.scale_inputs(split.images), split.labels)
    user_before, test_before = measure(user), measure(data.test)
    config = replace(TrainConfig(), epochs=epochs, learning_rate=learning_rate, seed=seed)
    run = train_recorded(store, model, mixed, config, "finetune", on_progress=on_progress)
    return FineTuneResult(run, user_before, measure(user), test_before, measure(data.test))
