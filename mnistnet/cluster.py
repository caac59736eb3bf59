"""Training on a Dask cluster: an embedded one (a scheduler and one worker per core, started as
child processes at the first training) or an existing one at MNISTNET_SCHEDULER.

Imports distributed, the store and mnistnet.tasks; never imported by `import mnistnet`. The
store is the channel: a run is a row before it is a task, workers write its progress and
heartbeat there, and Stop is its status (stopping). Every status change goes through the
store's lifecycle (mnistnet.store.lifecycle). Dask cannot stop a running task, so
`Cluster.reconcile` (called about once a second by the app's watchdog thread) restarts a
worker whose run has not stopped within STOP_GRACE_S of Stop (deciding and killing in one
transaction), interrupts the runs whose worker the scheduler has lost or whose heartbeat is
stale, and replaces a dead embedded scheduler.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from distributed import Client, Future, fire_and_forget

from .clustertls import Credentials, load_credentials, make_credentials
from .dburl import public_url
from .net import run_layout
from .store import ACTIVE, TRAINING, Store
from .sweep import SweepSpec, plan
from .tasks import run_task

STOP_GRACE_S = 5.0  # Stop -> worker restarted if the run has not ended by then
SUBMIT_GRACE_S = 10.0  # a run this new may not be known to the scheduler yet
SCHEDULER_ENV = "MNISTNET_SCHEDULER"
TLS_ENV = "MNISTNET_TLS_DIR"
# Many runs at once wait on the scheduler, not behind a busy worker (worker saturation 1.0),
# and one BLAS thread per worker. A task whose worker died is run again elsewhere by Dask: a
# run that had started finds itself no longer queued and returns at once (its row says
# interrupted), while one that was only waiting on that worker trains as if nothing happened.
DASK_ENV = {"DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)


def task_key(run_id: int) -> str:
    return f"mnistnet-run-{run_id}"


def state_lost(state: str | None) -> bool:
    """Whether a task in this scheduler state will never run (unknown to it, or erred)."""
    return state in (None, "erred")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _scheduler_view(dask_scheduler=None) -> dict:
    """On the scheduler, in one go: {"tasks": {key: state} of mnistnet's run tasks, "workers":
    [address]}. (Client.scheduler_info can answer from a stale copy: once, under load, with no
    workers at all.)"""
    return {"tasks": {str(k): ts.state for k, ts in dask_scheduler.tasks.items()
                      if str(k).startswith("mnistnet-run-")},
            "workers": list(dask_scheduler.workers)}


def follow_sweep(cluster: Cluster, sweep_id: int, on_end=None, poll_s: float = 0.5) -> tuple[list[dict], float]:
    """Wait for every run of a sweep to end, keeping the store true to the cluster meanwhile;
    on_end(row) for each run as it ends. -> (the runs, seconds from the first submit)."""
    store = cluster.store
    seen: set[int] = set()
    while True:
        cluster.reconcile()
        rows = store.list_runs(sweep_id=sweep_id)
        for r in rows:
            if r["status"] not in ACTIVE and r["id"] not in seen:
                seen.add(r["id"])
                if on_end:
                    on_end(r)
        if all(r["status"] not in ACTIVE for r in rows):
            start = min(r["started_at"] for r in rows)
            return rows, max(r["ended_at"] or start for r in rows) - start
        time.sleep(poll_s)


class Embedded:
    """A scheduler and `n_workers` single-threaded workers as child processes of this one,
    speaking mutual TLS with a certificate of their own (mnistnet.clustertls): no other local
    process can submit work to them. `db_url` reaches the workers in their environment only.

    Started from a long-lived thread: each child gets SIGKILL when that thread's process ends
    (PR_SET_PDEATHSIG), so the cluster never outlives the server, even one killed with -9.
    """

    def __init__(self, n_workers: int | None = None, db_url: str | None = None):
        self.n_workers = n_workers or os.cpu_count() or 1
        self.db_url = db_url
        self.folder = tempfile.mkdtemp(prefix="mnistnet-dask-")
        self.credentials = make_credentials(os.path.join(self.folder, "tls"))
        self.env = {**os.environ, **DASK_ENV, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        if db_url:
            self.env["MNISTNET_DB_URL"] = db_url
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.address: str | None = None
        self._lock = threading.Lock()

    def _popen(self, args: list[str], name: str) -> subprocess.Popen:
        log_file = open(os.path.join(self.folder, f"{name}.log"), "ab")  # noqa: SIM115 (the child keeps it)
        return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=self.env, stdout=log_file,
                                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def start(self, timeout: float = 60.0) -> str:
        """Start the scheduler and the workers -> the scheduler's address."""
        sched_file = os.path.join(self.folder, "scheduler.json")
        self.scheduler = self._popen(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                      "--no-dashboard", "--scheduler-file", sched_file,
                                      *self.credentials.scheduler_args()], "scheduler")
        deadline = time.monotonic() + timeout
        while not os.path.exists(sched_file):
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the training cluster's scheduler did not start (see "
                                   f"{self.folder}/scheduler.log)")
            time.sleep(0.05)
        time.sleep(0.05)  # written in one go; a moment for it to be complete
        self.address = json.loads(Path(sched_file).read_text())["address"]
        self.workers = [self._start_worker(i) for i in range(self.n_workers)]
        return self.address

    def _start_worker(self, i: int) -> subprocess.Popen:
        return self._popen(["distributed.cli.dask_worker", self.address, "--nthreads", "1", "--no-nanny",
                            "--no-dashboard", "--name", f"mnistnet-{i}", "--death-timeout", "60",
                            *self.credentials.worker_args()], f"worker-{i}")

    def kill_worker(self, pid: int | None) -> bool:
        """Kill the worker process `pid` and wait for it to end (replace_dead_workers starts
        another in its place)."""
        with self._lock:
            for w in self.workers:
                if w.pid == pid:
                    w.kill()
                    w.wait()
                    return True
        return False

    def scheduler_alive(self) -> bool:
        return self.scheduler is not None and self.scheduler.poll() is None

    def replace_dead_workers(self) -> None:
        with self._lock:
            for i, w in enumerate(self.workers):
                if w.poll() is not None:
                    log.warning("training worker %d ended (exit code %s); starting another", i, w.returncode)
                    self.workers[i] = self._start_worker(i)

    def close(self) -> None:
        for p in [*self.workers, self.scheduler]:
            if p is not None and p.poll() is None:
                p.terminate()
        for p in [*self.workers, self.scheduler]:
            if p is not None:
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()


def connect(address: str, security=None, timeout: float = 30.0) -> Client:
    """A Dask client of the scheduler at `address` (with `security`, a distributed Security, or
    None); ConnectionError (an OSError) naming the address when it cannot connect.

    A Client whose connection fails is left half-built in a reference cycle. If the garbage
    collector meets it later, inside the start of another Client's loop thread, its __del__
    waits for the shared loop's lock that the starting Client holds, and that start never ends
    (distributed 2026.8). So it is collected here, at once, while no lock is held."""
    try:
        return Client(address, timeout=timeout, set_as_default=False, security=security)
    except (OSError, TimeoutError, TypeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "no answer"
    gc.collect()  # the failed Client, unreachable now that the exception is gone
    raise ConnectionError(f"could not connect to the training cluster at {address}: {reason}")


class Cluster:
    """Submits the store's runs to Dask and keeps their rows true to what the scheduler knows."""

    def __init__(self, store: Store, address: str | None = None, n_workers: int | None = None,
                 credentials: Credentials | None = None):
        self.store = store
        self.embedded = None if address else Embedded(n_workers, store.url)
        self.address = address or self.embedded.start()
        self.credentials = self.embedded.credentials if self.embedded is not None else credentials
        self.client = self._client()
        self.closed = False

    def _client(self) -> Client:
        security = self.credentials.security() if self.credentials is not None else None
        return connect(self.address, security)

    @classmethod
    def from_env(cls, store: Store) -> Cluster:
        """The cluster at MNISTNET_SCHEDULER (with the TLS credentials in MNISTNET_TLS_DIR, if
        set: a cluster mnistnet.share started), or an embedded one."""
        folder = os.environ.get(TLS_ENV)
        credentials = load_credentials(folder) if folder else None
        return cls(store, os.environ.get(SCHEDULER_ENV) or None, credentials=credentials)

    def submit(self, run_id: int) -> None:
        """Queue run `run_id` (a queued row of the store) on the cluster."""
        # The store's URL without its password: the workers have the whole one in their environment.
        future = self.client.submit(run_task, public_url(self.store.url), run_id, key=task_key(run_id), pure=False)
        fire_and_forget(future)  # it runs even if this server goes away: the store is the channel

    def submit_sweep(self, owner: str, spec: SweepSpec, n_train: int = 50_000) -> int:
        """Queue every run of `spec` (checked first: ValueError names a bad value) as a sweep
        of `owner`'s -> the sweep's id."""
        runs = plan(spec, n_train)
        sweep_id = self.store.create_sweep(owner, spec.to_dict())
        for arch, config in runs:
            sizes, spec = run_layout(arch)
            run_id = self.store.submit_run(owner, sizes, config.to_dict(), "sweep",
                                           scheduler=self.address, sweep_id=sweep_id, spec=spec or None)
            self.submit(run_id)
        return sweep_id

    def cancel(self, run_id: int) -> None:
        """Drop a queued run's task from the scheduler (its row says cancelled already); force:
        the fire-and-forget client wants every key until it ends."""
        self.client.cancel([Future(task_key(run_id), self.client)], force=True)

    def workers(self) -> int:
        return len(self.client.run_on_scheduler(_scheduler_view)["workers"])

    def reconcile(self) -> None:
        """Keep the store true to the cluster: a dead embedded scheduler or worker replaced;
        silent runs interrupted (heartbeat); runs of a lost worker interrupted; workers that
        ignore Stop restarted; queued runs whose task is gone ended."""
        if self.closed:
            return
        if self.embedded is not None:
            if not self.embedded.scheduler_alive():
                self._replace_embedded()
            self.embedded.replace_dead_workers()
        self.store.interrupt_silent()
        active = self.store.list_runs(statuses=ACTIVE)
        if not active:
            return
        view = self.client.run_on_scheduler(_scheduler_view)
        states, workers = view["tasks"], set(view["workers"])
        now = time.time()
        for run in active:
            if run["scheduler"] != self.address:
                continue  # another server's: its heartbeat tells (queued ones: lose_unanswered)
            if run["status"] == "stopping":
                self._force_stop(run)
            if run["status"] in TRAINING and run["worker"] not in workers:
                self.store.interrupt_lost_worker(run["id"], run["worker"])
            elif run["status"] == "queued" and state_lost(states.get(task_key(run["id"]))) \
                    and now - run["started_at"] > SUBMIT_GRACE_S:
                self.store.lose_queued([run["id"]], "the cluster lost it before it started")
        self.store.lose_unanswered(self.address)

    def _force_stop(self, run: dict) -> bool:
        """Mark a run stopped (its last finished epoch's model stays) and kill its worker, in
        one transaction, if it is still stopping on that worker STOP_GRACE_S after Stop."""
        if self.embedded is not None:
            kill = lambda: self.embedded.kill_worker(run["pid"])  # noqa: E731
        else:
            kill = lambda: self.client.restart_workers([run["worker"]], raise_for_error=False)  # noqa: E731
        if not self.store.force_stop(run["id"], run["worker"], run["pid"], STOP_GRACE_S, kill):
            return False
        if self.embedded is not None:
            self.embedded.replace_dead_workers()
        log.warning("run %s ignored Stop for %.0f s: its worker was restarted", run["id"], STOP_GRACE_S)
        return True

    def _replace_embedded(self) -> None:
        """The embedded scheduler died: a new cluster in its place. Runs it held end by their
        heartbeat (their workers die with it); queued ones as lost."""
        log.warning("the training cluster's scheduler ended; starting another")
        old = self.address
        self.client.close()
        self.embedded.close()
        self.embedded = Embedded(self.embedded.n_workers, self.store.url)
        self.address = self.embedded.start()
        self.credentials = self.embedded.credentials
        self.client = self._client()
        for r in self.store.list_runs(statuses=ACTIVE):
            if r["scheduler"] != old:
                continue
            if r["status"] == "queued":
                self.store.lose_queued([r["id"]], "the training cluster restarted before it started; start it again")
            else:  # its worker ended with the old scheduler's cluster
                self.store.interrupt_lost_worker(r["id"], r["worker"])

    def close(self) -> None:
        self.closed = True  # a watchdog's next reconcile must not start a cluster in its place
        self.client.close()
        if self.embedded is not None:
            self.embedded.close()
