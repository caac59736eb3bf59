"""Background training jobs: one process per run (ui.worker), and a thread here that keeps
the run's reports in the job's own lock-protected state.

Imports streamlit and mnistnet. A thread writing `st.session_state` is silently lost, so a
job never touches Streamlit: its process trains, its thread records progress under the lock,
and pages read `Snapshot`s of it. Jobs live in a process-wide registry keyed by an unguessable
id; the session that started a job keeps the id (and so does the Train page's URL, for reloads).
When a finished job is adopted by its session, its model becomes that session's current
model and the job leaves the registry; jobs nobody adopts are dropped after an hour.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import threading
import time
from dataclasses import dataclass

import streamlit as st

from mnistnet import MLP, Progress, TrainConfig, load_model
from mnistnet.network import check_layer_sizes
from ui import state
from ui.worker import train_job as worker_entry

JOB_KEY = "mnistnet.job"  # this session's job id, until the finished job is adopted
LAST_RUN_KEY = "mnistnet.last_run"  # the Snapshot of this session's last finished run
MAX_RUNNING = 2  # runs training at once on this server (a 2-core machine)
KEEP_UNADOPTED_S = 3600.0


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of a job's state: plain data for the page and the figure builders."""

    id: str
    status: str  # running, finished, stopped, failed
    layer_sizes: tuple[int, ...]
    config: dict
    n_train: int  # training images per epoch
    progress: Progress | None
    epochs: list[dict]  # History.epochs so far
    batch_losses: list[list[float]]  # [samples seen, mean loss since the previous point]
    error: str | None
    started: float
    ended: float | None

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def fraction(self) -> float:
        """Share of all training samples seen, 0..1."""
        if self.status == "finished":
            return 1.0
        p = self.progress
        return min(p.samples_seen / p.total_samples, 1.0) if p else 0.0

    @property
    def seconds_left(self) -> float | None:
        p = self.progress
        if not self.running or p is None or p.samples_per_s <= 0:
            return None
        return (p.total_samples - p.samples_seen) / p.samples_per_s


# A fork server started once, with the worker's imports done, makes a new job's process in
# milliseconds; forking the (multi-threaded) Streamlit server itself would not be safe.
# (Windows has no fork server: there each job's process starts afresh, about a second.)
if "forkserver" in multiprocessing.get_all_start_methods():
    _CTX = multiprocessing.get_context("forkserver")
    _CTX.set_forkserver_preload(["ui.worker"])
else:
    _CTX = multiprocessing.get_context("spawn")


class Job:
    """A training run in a process of its own (ui.worker); a thread here reads its reports
    into this object's lock-protected state, which pages read as Snapshots."""

    def __init__(self, hidden: tuple[int, ...], config: TrainConfig, data, db_url: str):
        self.id = secrets.token_urlsafe(8)
        self.hidden, self.config, self.data, self.db_url = tuple(hidden), config, data, db_url
        self.layer_sizes = check_layer_sizes((784, *hidden, 10))
        self.model: MLP | None = None  # the trained model, once the run has ended
        n = len(data.train.labels)
        self.n_train = min(n, config.train_size or n)
        self._lock = threading.Lock()
        self._stop = _CTX.Event()
        self._status, self._error = "running", None
        self._progress: Progress | None = None
        self._epochs: list[dict] = []
        self._batch_losses: list[list[float]] = []
        self.started, self.ended = time.time(), None
        self.run_id = self.model_id = None  # set by the store when the run ends
        self._process = None
        self._listener = threading.Thread(target=self._listen, name=f"mnistnet-job-{self.id}", daemon=True)

    def start(self) -> None:
        # The fork server inherits this environment when it starts (with the first job): one
        # OpenBLAS thread from the start, so no BLAS thread pool is ever forked.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        receive, send = _CTX.Pipe(duplex=False)
        self._process = _CTX.Process(
            target=worker_entry, name=f"mnistnet-job-{self.id}", daemon=True,
            args=(self.db_url, self.hidden, self.config.to_dict(), self.data, send, self._stop))
        self._process.start()
        send.close()  # the child holds the only sending end: its exit ends our recv() with EOF
        self._conn = receive
        self._listener.start()

    def stop(self) -> None:
        """Ask the run to end after the current batch; it keeps its model."""
        self._stop.set()

    def _on_progress(self, p: Progress) -> None:
        with self._lock:
            self._progress = p
            if p.epoch_record is not None:
                self._epochs.append(p.epoch_record)
            else:
                self._batch_losses.append([p.samples_seen, p.running_loss])

    def _listen(self) -> None:
        status, error, died = "failed", None, False
        try:
            while True:
                msg = self._conn.recv()
                if msg[0] == "progress":
                    self._on_progress(msg[1])
                    continue
                _, status, error, self.run_id, self.model_id, blob = msg
                if blob is not None:
                    self.model = load_model(blob)
                break
        except EOFError:  # the process died without its last word (killed, out of memory)
            died = True
        except Exception as e:  # shown on the page; this thread must never die silently
            error = f"{type(e).__name__}: {e}"
        finally:
            self._conn.close()
        self._process.join(timeout=5)
        if died:
            error = f"the training process ended unexpectedly (exit code {self._process.exitcode})"
        with self._lock:
            self._status, self._error, self.ended = status, error, time.time()

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self.id, self._status, self.layer_sizes, self.config.to_dict(),
                            self.n_train, self._progress, list(self._epochs),
                            [list(b) for b in self._batch_losses], self._error, self.started, self.ended)


class Registry:
    def __init__(self):
        self.lock = threading.Lock()
        self.jobs: dict[str, Job] = {}

    def add(self, job: Job) -> None:
        with self.lock:
            now = time.time()
            for jid, j in list(self.jobs.items()):
                if j.ended is not None and now - j.ended > KEEP_UNADOPTED_S:
                    del self.jobs[jid]
            running = sum(j.ended is None for j in self.jobs.values())
            if running >= MAX_RUNNING:
                raise RuntimeError(f"{running} training runs are already going on this server; "
                                   "wait for one to finish")
            self.jobs[job.id] = job

    def get(self, job_id: str | None) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id) if job_id else None

    def remove(self, job_id: str) -> None:
        with self.lock:
            self.jobs.pop(job_id, None)


@st.cache_resource(show_spinner=False)
def registry() -> Registry:
    state.server()  # sets the one-BLAS-thread limit before any training thread starts
    return Registry()


def start(hidden: tuple[int, ...], config: TrainConfig) -> Snapshot:
    """Start a run for this session; RuntimeError if the server is busy."""
    from ui import db  # the job's process records the run in the same store

    job = Job(hidden, config, state.data(), db.store().url)
    registry().add(job)
    st.session_state[JOB_KEY] = job.id
    job.start()
    return job.snapshot()


def attach(job_id: str | None) -> None:
    """Make `job_id` (from the URL, after a reload) this session's job if it still exists."""
    if job_id and JOB_KEY not in st.session_state and registry().get(job_id) is not None:
        st.session_state[JOB_KEY] = job_id


def current() -> Snapshot | None:
    """This session's job, running or finished but not yet adopted."""
    job = registry().get(st.session_state.get(JOB_KEY))
    return job.snapshot() if job else None


def stop(job_id: str) -> None:
    job = registry().get(job_id)
    if job:
        job.stop()


def adopt_finished() -> Snapshot | None:
    """If this session's job has ended: its model becomes current and the job is cleaned up."""
    job_id = st.session_state.get(JOB_KEY)
    if not job_id:
        return None
    job = registry().get(job_id)
    if job is None:  # cleaned up, or another tab adopted it
        del st.session_state[JOB_KEY]
        return None
    snap = job.snapshot()
    if snap.running:
        return None
    if snap.epochs:  # finished, stopped or diverged after at least one measured epoch
        how = {"finished": "trained", "stopped": "trained (stopped early)",
               "failed": "trained until it diverged"}[snap.status]
        state.set_current(job.model, f"{how} in this browser session on the Train page"
                          + (f" (run #{job.run_id})" if job.run_id else ""), job.model_id)
    st.session_state[LAST_RUN_KEY] = snap
    del st.session_state[JOB_KEY]
    registry().remove(job_id)
    return snap
