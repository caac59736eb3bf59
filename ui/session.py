"""The session's layer: who the visitor is and their current model, read from the store.

Imports streamlit, numpy, mnistnet, ui.identity and ui.resources. The current model lives in
the store (per owner), so it comes back after any reload, on any page, in any tab. A session
keeps only caches: its current model's snapshots, and an injected model's test-set probabilities;
a stored model and its probabilities are shared by every session (ui.resources). Getters have no
side effects but these caches.

Tests inject small data and a model through `st.session_state[INJECT_KEY]` (an `Injected`),
so an AppTest run never loads MNIST or trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from mnistnet import MLP, metrics
from mnistnet.data import DATASETS
from mnistnet.snapshots import Snapshot
from mnistnet.train import dataset_of
from ui import identity, resources

INJECT_KEY = "mnistnet.inject"
PREDICTIONS_KEY = "session.predictions"  # (MLP, (n, 10) float32 test probabilities) of an injected model
SNAPSHOTS_KEY = "session.snapshots"  # (ModelEntry.key, [Snapshot]): the last model's
DEFAULT_RUN = "default_run"  # meta key: the run that trains the store's default model
SERVER_OWNER = "mnistnet"  # owns the default model's run: no visitor can stop or delete it


@dataclass
class Injected:
    """Test hook: data shaped like `load_mnist()` and optionally a current model."""

    data: object
    model: MLP | None = None


@dataclass
class ModelEntry:
    """A model, its id in the store (None when injected) and where it came from, in words."""

    model: MLP
    source: str
    model_id: int | None = None
    test_accuracy: float | None = None
    key: tuple[int, str] | None = None  # (model id, content SHA-256) of a stored model

    @property
    def dataset(self) -> str:
        """The data set it reads: a key of mnistnet.data.DATASETS."""
        return dataset_of(self.model)

    @property
    def classes(self) -> tuple[str, ...]:
        """Its 10 class names: "0".."9" for MNIST, "T-shirt/top".. for Fashion-MNIST."""
        return DATASETS[self.dataset].classes

    @property
    def dataset_title(self) -> str:
        return DATASETS[self.dataset].title


def owner() -> str | None:
    return identity.owner()


def data(report=None):
    """MNIST (or the injected data); report(name, done, total) follows a first download."""
    inj = st.session_state.get(INJECT_KEY)
    return inj.data if inj is not None else resources.mnist(report)


def data_ready() -> bool:
    return INJECT_KEY in st.session_state or resources.mnist_loaded()


def _entry(model_id: int, source: str, test_accuracy: float | None) -> ModelEntry:
    """The stored model `model_id` (shared, read-only: ui.resources.model) as an entry."""
    key = (model_id, resources.store().model_sha256(model_id))
    return ModelEntry(resources.model(*key), source, model_id, test_accuracy, key)


def default_run() -> dict | None:
    """The run that trains (or trained) the store's default model, if one was started."""
    raw = resources.store().get_meta(DEFAULT_RUN)
    return resources.store().run(int(raw)) if raw else None


def default_entry() -> ModelEntry | None:
    run = default_run()
    if run is None or run["status"] != "finished" or run["model_id"] is None:
        return None
    return _entry(run["model_id"], f"the default model (the seed network on drawn-like digits), "
                  f"trained once for this lab (run #{run['id']}) and shared by everyone using it", run["test_accuracy"])


def current() -> ModelEntry | None:
    """The visitor's current model, else the lab's default model, else None."""
    who = owner()
    row = resources.store().current(who) if who else None
    inj = st.session_state.get(INJECT_KEY)
    if row is None and inj is not None:
        return ModelEntry(inj.model, "a model injected by a test") if inj.model is not None else None
    if row is None:
        return default_entry()
    return _entry(row["model_id"], row["source"], row["test_accuracy"])


def current_snapshots() -> list[Snapshot]:
    """The snapshots of the visitor's current model (`current()`), ascending epochs; [] when it
    has none (an uploaded file without them, a model trained before they were kept, an injected
    one). They are stored with the model, so a copy made by "Use this model" has them too.
    Weights (fan_in, fan_out) and biases (fan_out,) float32; kept per session for that model."""
    entry = current()
    if entry is None or entry.model_id is None:
        return []
    key = entry.key
    cached = st.session_state.get(SNAPSHOTS_KEY)
    if cached is not None and cached[0] == key:
        return cached[1]
    snaps = resources.store().model_snapshots(entry.model_id)
    st.session_state[SNAPSHOTS_KEY] = (key, snaps)
    return snaps


def set_current(model_id: int, source: str, test_accuracy: float | None = None) -> None:
    resources.store().set_current(owner(), model_id, source, test_accuracy)


def test_data(entry: ModelEntry):
    """The data set `entry`'s model reads (the injected data in a test), as load_mnist() returns."""
    inj = st.session_state.get(INJECT_KEY)
    return inj.data if inj is not None else resources.dataset(entry.dataset)


def test_probabilities(entry: ModelEntry) -> np.ndarray:
    """(n_test, 10) float32 probabilities of `entry`'s model on the test set: read-only and shared
    by every session for a stored model, kept per session for an injected one."""
    if entry.key is not None and INJECT_KEY not in st.session_state:
        return resources.test_probabilities(*entry.key, entry.model)
    cached = st.session_state.get(PREDICTIONS_KEY)
    if cached is not None and cached[0] is entry.model:
        return cached[1]
    probs = entry.model.predict_proba(test_data(entry).test.images)
    st.session_state[PREDICTIONS_KEY] = (entry.model, probs)
    return probs


def test_summary(entry: ModelEntry) -> dict:
    """Test accuracy with exact counts and the confusion matrix of `entry`'s model."""
    probs = test_probabilities(entry)
    labels = test_data(entry).test.labels
    cm = metrics.confusion_matrix(labels, probs.argmax(axis=1))
    correct, total = int(np.trace(cm)), int(len(labels))
    return {"correct": correct, "total": total, "accuracy": correct / max(total, 1), "confusion": cm}
