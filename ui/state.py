"""Cached resources and per-session state: MNIST, the shared default model, the session's
current model and its test-set predictions.

Imports streamlit, numpy, threadpoolctl and mnistnet. Process-wide things (data, the default
model, training jobs) live in one `st.cache_resource` store; a session's own things live in
`st.session_state` under the keys below.

Tests inject small data and models through `st.session_state[INJECT_KEY]` (an `Injected`),
so an AppTest run never loads MNIST or trains the default model.
"""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import numpy as np
import streamlit as st
from threadpoolctl import threadpool_limits

from mnistnet import MLP, DataError, load_mnist, metrics, preset
from mnistnet.runs import train_recorded

INJECT_KEY = "mnistnet.inject"
MODEL_KEY = "mnistnet.model"  # this session's current model: a ModelEntry
PREDICTIONS_KEY = "mnistnet.predictions"  # (model id, (n, 10) float32 test probabilities)


@dataclass
class Injected:
    """Test hook: data shaped like `load_mnist()` and optionally a ready default model."""

    data: object
    default_model: MLP | None = None


@dataclass
class ModelEntry:
    """A model and where it came from, in words for the home page."""

    model: MLP
    source: str
    model_id: int | None = None  # the model's id in the store, when it has one
    created: float = field(default_factory=time.time)


class ServerState:
    """Process-wide: MNIST once loaded, the default (seed preset) model once trained."""

    def __init__(self):
        self.data_lock = threading.Lock()
        self.model_lock = threading.Lock()
        self.data = None
        self.default: ModelEntry | None = None


@st.cache_resource(show_spinner=False)
def server() -> ServerState:
    # OpenBLAS's thread count is process-wide, so "one BLAS thread per training thread" can
    # only be had by giving the whole server one: on a shared 2-core machine two training
    # threads (or one plus predictions) then never oversubscribe the cores.
    threadpool_limits(limits=1, user_api="blas")
    return ServerState()


def _injected() -> Injected | None:
    return st.session_state.get(INJECT_KEY)


def data():
    """MNIST as `load_mnist()` returns it; fetched and verified on first use with a progress bar."""
    inj = _injected()
    if inj is not None:
        return inj.data
    s = server()
    if s.data is not None:
        return s.data
    with s.data_lock:
        if s.data is None:
            with st.status("Loading MNIST (fetched and verified on first use)...", expanded=True) as box:
                bar = st.progress(0.0)

                def report(name, done, total):
                    frac = done / total if total else 0.0
                    bar.progress(min(frac, 1.0), text=f"{name}: {done / 1e6:.1f} MB")

                from ui import db  # MNIST lives in the store: imported once from the verified files
                if not db.store().has_mnist():
                    bar.progress(0.0, text="Importing MNIST into the store (once)...")
                    try:
                        db.store().import_mnist(load_mnist(report))
                    except DataError as e:  # it says where to put the four files
                        box.update(label="MNIST could not be loaded", state="error")
                        st.error(str(e))
                        st.stop()
                s.data = db.store().load_mnist()
                box.update(label="MNIST ready", state="complete", expanded=False)
    return s.data


def default_model() -> ModelEntry | None:
    """The shared seed-preset model, or None until someone trains it (`train_default_model`)."""
    inj = _injected()
    if inj is not None:
        m = inj.default_model or st.session_state.get("mnistnet.injected_default")
        return ModelEntry(m, "the default model, injected by a test") if m is not None else None
    return server().default


def train_default_model() -> ModelEntry:
    """Train the seed preset once per server process (or return it), with a progress bar."""
    inj = _injected()
    s = server()
    if inj is None and s.default is not None:
        return s.default
    d = data()
    hidden, config = preset("seed")
    if inj is not None:  # tests: one quick epoch on the injected data, kept in this session
        config = replace(config, epochs=1)
    with s.model_lock if inj is None else nullcontext():
        if inj is None and s.default is not None:  # another session trained it meanwhile
            return s.default
        bar = st.progress(0.0, text="Training the seed preset...")

        def progress(p):
            bar.progress(min(p.samples_seen / p.total_samples, 1.0),
                         text=f"Training the seed preset: epoch {p.epoch}/{p.epochs}, "
                              f"{p.samples_per_s:,.0f} samples/s")

        model = MLP((784, *hidden, 10), seed=config.seed)
        from ui import db
        run = train_recorded(db.store(), model, d, config, "app", on_progress=progress)
        bar.empty()
        entry = ModelEntry(model, f"the seed preset (the course report's recipe), trained once on "
                                  f"this server (run #{run.run_id}) and shared by everyone using it", run.model_id)
        if inj is not None:
            st.session_state["mnistnet.injected_default"] = model
        else:
            s.default = entry
    return entry


def current() -> ModelEntry | None:
    """This session's model if it has one, else the shared default, else None."""
    from ui import jobs  # here, not at the top: jobs imports this module
    jobs.adopt_finished()
    return st.session_state.get(MODEL_KEY) or default_model()


def set_current(model: MLP, source: str, model_id: int | None = None) -> None:
    st.session_state[MODEL_KEY] = ModelEntry(model, source, model_id)


def test_probabilities(entry: ModelEntry) -> np.ndarray:
    """(n_test, 10) float32 probabilities of the current model on the test set, kept per session."""
    cached = st.session_state.get(PREDICTIONS_KEY)
    if cached is not None and cached[0] is entry.model:
        return cached[1]
    probs = entry.model.predict_proba(data().test.images)
    st.session_state[PREDICTIONS_KEY] = (entry.model, probs)
    return probs


def test_summary(entry: ModelEntry) -> dict:
    """Test accuracy with exact counts and the confusion matrix of `entry`'s model."""
    probs = test_probabilities(entry)
    labels = data().test.labels
    cm = metrics.confusion_matrix(labels, probs.argmax(axis=1))
    correct, total = int(np.trace(cm)), int(len(labels))
    return {"correct": correct, "total": total, "accuracy": correct / max(total, 1),
            "confusion": cm}
