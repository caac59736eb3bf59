"""Cached resources, one per server process: the store, the training cluster, MNIST, and what
every visitor of a stored model shares (the model, its test-set probabilities).

The bottom layer of ui/: imports numpy, streamlit, threadpoolctl and mnistnet only. Getters have no
side effects beyond making the resource once.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import streamlit as st
from threadpoolctl import threadpool_limits

from mnistnet import DataError, load_mnist
from mnistnet.data import load_dataset
from mnistnet.store import Store
from mnistnet.train import dataset_of

RECONCILE_S = 1.0
JANITOR_S = 5.0
log = logging.getLogger("mnistnet.app")


@st.cache_resource(show_spinner=False)
def store() -> Store:
    """The server's store (SQLite in the user data folder unless MNISTNET_DB_URL says otherwise),
    with a janitor thread that ends the runs nobody trains any more (Janitor)."""
    # OpenBLAS's thread count is process-wide: the server's own predictions take one core at
    # most, leaving the other to the training workers.
    threadpool_limits(limits=1, user_api="blas")
    s = Store()  # a server that was killed left its runs "running": their heartbeats tell
    s.lose_unanswered()
    threading.Thread(target=_janitor, args=(s,), name="mnistnet-janitor", daemon=True).start()
    return s


def _janitor(s: Store) -> None:
    """Every JANITOR_S: runs whose heartbeat stopped -> interrupted, queued runs of a cluster
    that no longer answers -> interrupted. Each a compare-and-set: any number of servers may."""
    while True:
        time.sleep(JANITOR_S)
        try:
            s.interrupt_silent()
            s.lose_unanswered()
        except Exception:  # logged, and tried again: the janitor must not die
            log.exception("checking the store's runs failed")


class Trainer:
    """The training cluster, started at the first training (never at page load: cold start
    stays as it was), and a watchdog thread that keeps the store's runs true to it. A start
    that failed is tried again at the next training.

    The thread that starts the embedded cluster lives as long as the server, because its
    children die with it (PR_SET_PDEATHSIG follows the thread that started them); it also
    replaces a dead scheduler (Cluster.reconcile).
    """

    def __init__(self, store: Store):
        self.store = store
        self._ready = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self.cluster = None  # a mnistnet.cluster.Cluster once started
        self.error: str | None = None

    def get(self, timeout: float = 120.0):
        """The cluster, starting it on first use (or again after a failed start); RuntimeError
        with a sentence if it cannot start."""
        with self._lock:
            if self._started and self._ready.is_set() and self.cluster is None:  # the last start failed
                self._started = False
                self._ready.clear()
            if not self._started:
                self._started = True
                threading.Thread(target=self._main, name="mnistnet-trainer", daemon=True).start()
        if not self._ready.wait(timeout) or self.cluster is None:
            raise RuntimeError(self.error or "the training cluster did not start in time; try again")
        return self.cluster

    def _main(self) -> None:
        # Imported here, not at the top: Dask takes about a second to import, which a page
        # would otherwise pay on a cold server before anyone trains.
        from mnistnet.cluster import Cluster

        try:
            self.cluster = Cluster.from_env(self.store)
            self.error = None
        except Exception:
            log.exception("the training cluster could not start")
            self.error = "the training cluster could not start (the server log says why); try again in a moment"
        finally:
            self._ready.set()
        while self.cluster is not None:
            try:
                self.cluster.reconcile()
            except Exception:  # logged, and tried again: the watchdog must not die
                log.exception("checking the runs against the cluster failed")
            time.sleep(RECONCILE_S)


@st.cache_resource(show_spinner=False)
def trainer() -> Trainer:
    return Trainer(store())


class _Data:
    def __init__(self):
        self.lock = threading.Lock()
        self.mnist = None


@st.cache_resource(show_spinner=False)
def _data() -> _Data:
    return _Data()


@st.cache_resource(show_spinner=False)
def _other_dataset(name: str):
    d = load_dataset(name)
    _read_only([s.images for s in (d.train, d.val, d.test)] + [s.labels for s in (d.train, d.val, d.test)])
    return d


def dataset(name: str):
    """The data set `name` (a key of mnistnet.data.DATASETS) as `load_mnist()` returns MNIST:
    MNIST from the store, another from its verified files, loaded once per process (read-only)."""
    return mnist() if name == "mnist" else _other_dataset(name)


def mnist_loaded() -> bool:
    return _data().mnist is not None


def mnist(report=None):
    """MNIST as `load_mnist()` returns it, imported into the store once from the verified
    files. report(name, done, total) follows a first download. DataError says what to do."""
    d = _data()
    if d.mnist is None:
        with d.lock:
            if d.mnist is None:
                s = store()
                if not s.has_mnist():
                    s.import_mnist(load_mnist(report))
                d.mnist = s.load_mnist()
    return d.mnist


# A class shares one or two models: each is loaded and evaluated once per process, not once per
# visitor (8 entries bound the memory to 8 of the largest allowed models). Keyed by id and
# content: a store upgraded from before schema 3 (SQLite) may give a deleted model's id to a new
# one. Streamlit computes one key once (the other sessions wait for it).
MODELS_KEPT = 8


def _read_only(arrays) -> None:
    for a in arrays:
        a.flags.writeable = False


@st.cache_resource(max_entries=MODELS_KEPT, show_spinner=False)
def model(model_id: int, sha256: str):
    """The stored model `model_id` (content `sha256`), one read-only copy for every session: its
    arrays refuse writes (nothing in the server trains; a stray write raises)."""
    m = store().load_model(model_id)
    _read_only([*m.weights, *m.biases])
    return m


@st.cache_resource(max_entries=MODELS_KEPT, show_spinner=False)
def test_probabilities(model_id: int, sha256: str, _model) -> np.ndarray:
    """(n_test, 10) float32 read-only test-set probabilities of the stored model `model_id`
    (`_model`, as `model()` returns it), computed once per process."""
    probs = _model.predict_proba(dataset(dataset_of(_model)).test.images)
    probs.flags.writeable = False
    return probs


__all__ = ["store", "trainer", "mnist", "dataset", "model", "test_probabilities", "DataError", "Trainer"]
