"""The task a Dask worker runs for each run of the store: `run_task(db_url, run_id)`.

Imports the core, the store and distributed (only to name the worker it runs on). Never
imported by `import mnistnet`. A worker process keeps one Store per URL and MNIST once loaded
(from the store), so a task never loads them again. BLAS is held to one thread per worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from distributed import get_worker
from threadpoolctl import threadpool_limits

from .data import load_dataset, load_mnist
from .dburl import resolve_url
from .runs import execute_run, mix_user_digits, new_model, user_samples
from .store import Store
from .train import TrainConfig, TrainingDiverged

log = logging.getLogger(__name__)
_lock = threading.Lock()
_stores: dict[str, Store] = {}
_data: dict[str, object] = {}
_data_lock = threading.Lock()


def worker_store(db_url: str) -> Store:
    """This process's Store for `db_url` (made once). A task's URL hides its password
    (mnistnet.dburl.public_url): the whole one comes from this worker's MNISTNET_DB_URL."""
    with _lock:
        if db_url not in _stores:
            _stores[db_url] = Store(resolve_url(db_url))
        return _stores[db_url]


def worker_data(db_url: str, dataset: str = "mnist"):
    """MNIST from the store at `db_url` (another data set from its verified files), loaded
    once per worker process."""
    store = worker_store(db_url)
    with _data_lock:
        if dataset != "mnist":
            if dataset not in _data:
                _data[dataset] = load_dataset(dataset)
            return _data[dataset]
        if db_url not in _data:
            if not store.has_mnist():  # a worker may be first: import the verified files
                store.import_mnist(load_mnist())
            _data[db_url] = store.load_mnist()
        return _data[db_url]


def _worker_address() -> str:
    try:
        return get_worker().address
    except ValueError:  # not in a Dask worker (a test calling the task directly)
        return f"process {os.getpid()}"


def run_task(db_url: str, run_id: int) -> str:
    """Train run `run_id` of the store at `db_url` if it is still queued -> its final status.

    The run says what to train: layer sizes and TrainConfig, and for fine-tuning the model to
    start from and whose digits to mix in. Errors end up in the run's row, never raised.
    """
    threadpool_limits(limits=1, user_api="blas")
    store = worker_store(db_url)
    worker = _worker_address()
    if not store.claim_run(run_id, worker, socket.gethostname(), os.getpid()):
        return "not queued"
    row = store.run(run_id)
    try:
        config = TrainConfig.from_dict(row["config"])
        data = worker_data(db_url, config.dataset)
        if row["origin"] == "finetune":
            model = store.load_model(row["base_model_id"])
            everyone = bool(row["spec"].get("everyone"))
            data = mix_user_digits(data, user_samples(store, row["owner"], everyone))
        else:
            model = new_model(row, config.seed)
        status = execute_run(store, run_id, model, data, config, worker=worker).history.status
        if row["spec"].get("make_current"):
            store.adopt(run_id)
        return status
    except TrainingDiverged:  # recorded by execute_run, with its message and last finite model
        if row["spec"].get("make_current"):
            store.set_note(run_id, "The run diverged; your current model stays current.")
        return "failed"
    except Exception:  # recorded by execute_run when training had begun; otherwise here
        log.exception("run %s could not start", run_id)
        store.end_run(run_id, "failed", error="the run could not start (the server log has the details)", worker=worker)
        return "failed"
