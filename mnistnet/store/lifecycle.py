"""A run's lifecycle: its states and every transition between them, the one place that moves a
run from one status to another. Imports SQLAlchemy and the store's tables.

    submit ──> queued ──claim──> running ──request_stop──> stopping
                 │                  │                          │
       request_stop (cancel)        ├──end: finished / stopped / failed (the runner itself)
                 │                  ├──interrupt: heartbeat older than HEARTBEAT_LIMIT_S,
                 v                  │             or its worker lost by its scheduler
             cancelled              └──force_stop: Stop not obeyed within the grace ─> stopped
                 queued ──lose──> interrupted (the cluster lost its task before it started)
                 queued ──refuse─> failed (the cluster did not take it)

| from              | to                        | who                       | the UPDATE's condition              |
|-------------------|---------------------------|---------------------------|-------------------------------------|
| (none)            | queued                    | a page, the CLI, a sweep  | insert                              |
| queued            | running                   | the worker or CLI process | status = queued                     |
| queued            | cancelled                 | the owner's Stop          | status = queued, owner              |
| running           | stopping                  | the owner's Stop          | status = running, owner             |
| running, stopping | finished, stopped, failed | the runner, at its end    | status training, worker = runner    |
| running, stopping | interrupted               | any server, any CLI       | heartbeat older than the limit      |
| running, stopping | interrupted               | any server                | scheduler gone, heartbeat 5 s old   |
| running, stopping | interrupted               | the run's own cluster     | worker = the one its scheduler lost |
| stopping          | stopped (worker killed)   | the run's own cluster     | worker, pid, in the kill's txn      |
| queued            | interrupted, failed       | the run's own cluster     | status = queued                     |
| (none)            | finished                  | an uploaded model         | insert                              |

Every transition is a compare-and-set: one UPDATE whose WHERE states the status (and runner)
it expects, and whose row count says whether it happened. Nothing is decided on a row read
earlier. A run's liveness is its heartbeat: the process that trains it writes `heartbeat_at`
every HEARTBEAT_S, whatever host it runs on; a run whose heartbeat is older than the limit
is interrupted by whoever notices first.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import sqlalchemy as sa

from .db import _check_owner
from .schema import StoreError, epochs, models, runs

STATES = ("queued", "running", "stopping", "finished", "stopped", "failed", "interrupted", "cancelled")
ACTIVE = ("queued", "running", "stopping")  # not ended yet
TRAINING = ("running", "stopping")  # a worker or CLI process holds it
ENDED = tuple(s for s in STATES if s not in ACTIVE)
RUNNER_ENDS = ("finished", "stopped", "failed", "interrupted")  # what a runner may end its run as
HEARTBEAT_S = 1.0  # the runner writes its heartbeat this often
# A runner silent this long is gone (killed, its host down). Busy SQLite writers can hold the
# lock for a few seconds (an MNIST import), so the limit is many beats. MNISTNET_HEARTBEAT_LIMIT_S
# overrides it (tests that kill a runner on purpose).
HEARTBEAT_LIMIT_S = float(os.environ.get("MNISTNET_HEARTBEAT_LIMIT_S") or 20.0)
# A run whose scheduler no longer answers (it died with its server) and whose heartbeat is this
# old: its worker died too.
LOST_SCHEDULER_LIMIT_S = 5.0
CLI_OWNER = "cli"


class NotAllowed(StoreError):
    """The visitor may not do this to that run; the message says why."""


def interrupted_message(who: str, finished_epochs: int) -> str:
    """'the server stopped during epoch 5; the model of epoch 4 is kept'."""
    kept = (f"; the model of epoch {finished_epochs} is kept" if finished_epochs
            else "; no epoch had finished, so there is no model")
    return f"the {who} stopped during epoch {finished_epochs + 1}{kept}"


def db_now(engine: sa.Engine):
    """The database's clock in Unix seconds, as an SQL expression: heartbeats and Stop's grace
    are written and compared on one clock, whatever the hosts' clocks say."""
    if engine.dialect.name == "postgresql":
        return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Float)
    return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)", sa.Float)


def _finished_epochs(c, run_id: int) -> int:
    return int(c.execute(sa.select(sa.func.count()).select_from(epochs).where(epochs.c.run_id == run_id)).scalar())


class Lifecycle:
    """The transitions, as methods of the Store (which provides `engine` and `_write`)."""

    # -- born ------------------------------------------------------------------------------
    def submit_run(self, owner: str, layer_sizes, config: dict, origin: str, scheduler: str | None = None,
                   base_model_id: int | None = None, spec: dict | None = None, sweep_id: int | None = None) -> int:
        """(none) -> queued: a new run waiting for a worker -> its id."""
        _check_owner(owner)
        with self._write() as c:
            return c.execute(runs.insert().values(
                layer_sizes=json.dumps(list(layer_sizes)), config=json.dumps(config), status="queued",
                origin=origin, owner=owner, started_at=time.time(), scheduler=scheduler,
                base_model_id=base_model_id, spec=json.dumps(spec) if spec else None, sweep_id=sweep_id,
            )).inserted_primary_key[0]

    # -- the runner's transitions ----------------------------------------------------------
    def claim_run(self, run_id: int, worker: str, host: str | None = None, pid: int | None = None) -> bool:
        """queued -> running on `worker`; False if it is no longer queued (cancelled meanwhile)."""
        with self._write() as c:
            done = c.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "queued").values(
                status="running", running_at=time.time(), heartbeat_at=db_now(self.engine), worker=worker,
                host=host, pid=pid))
            return done.rowcount == 1

    def heartbeat(self, run_id: int, worker: str) -> bool:
        """The runner `worker` is alive; False once the run is no longer its to train."""
        with self._write() as c:
            done = c.execute(runs.update().where(runs.c.id == run_id, runs.c.worker == worker,
                                                 runs.c.status.in_(TRAINING)).values(heartbeat_at=db_now(self.engine)))
            return done.rowcount == 1

    def should_stop(self, run_id: int) -> bool:
        """Whether the runner of `run_id` must stop: Stop asked, or the run ended without it."""
        with self.engine.connect() as c:
            status = c.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar()
        return status != "running"

    def end_run(self, run_id: int, status: str, model=None, error: str | None = None,
                worker: str | None = None) -> int | None:
        """running / stopping -> `status` (finished, stopped, failed, interrupted), by its runner
        (`worker`: None matches any). The model, if given, replaces the run's only if the run
        was still this runner's to end; a run ended meanwhile (interrupted, stopped by force)
        keeps its status and model. -> the run's model id, if any."""
        if status not in RUNNER_ENDS:
            raise ValueError(f"status must be one of {RUNNER_ENDS}, got {status!r}")
        with self._write() as c:
            cond = [runs.c.id == run_id, runs.c.status.in_(TRAINING)]
            if worker is not None:
                cond.append(runs.c.worker == worker)
            done = c.execute(runs.update().where(*cond).values(status=status, ended_at=time.time(), error=error))
            if done.rowcount == 1 and model is not None:
                epoch = len(model.history.epochs) if model.history is not None else None
                return self._replace_model(c, run_id, model, epoch)
            return c.execute(sa.select(models.c.id).where(models.c.run_id == run_id)).scalar()

    def fail_unstarted(self, run_id: int, error: str) -> bool:
        """queued -> failed (the cluster did not take it) -> whether it changed."""
        with self._write() as c:
            done = c.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "queued")
                             .values(status="failed", ended_at=time.time(), error=error))
            return done.rowcount == 1

    # -- the owner's Stop ------------------------------------------------------------------
    def request_stop(self, run_id: int, owner: str) -> str:
        """The owner's Stop: queued -> cancelled, running -> stopping (its runner reads that);
        -> the status after the call. StoreError if there is no such run, NotAllowed if it is
        not `owner`'s. Two conditional UPDATEs: a claim between them is seen by the second."""
        now = time.time()
        with self._write() as c:
            done = c.execute(runs.update().where(runs.c.id == run_id, runs.c.owner == owner,
                                                 runs.c.status == "queued").values(
                status="cancelled", ended_at=now, stop_requested_at=now, error="stopped before it started"))
            if done.rowcount == 1:
                return "cancelled"
            done = c.execute(runs.update().where(runs.c.id == run_id, runs.c.owner == owner,
                                                 runs.c.status == "running").values(
                status="stopping", stop_requested_at=db_now(self.engine)))
            if done.rowcount == 1:
                return "stopping"
            row = c.execute(sa.select(runs.c.owner, runs.c.status).where(runs.c.id == run_id)).first()
        if row is None:
            raise StoreError(f"there is no run #{run_id}")
        if row.owner != owner:
            raise NotAllowed(f"run #{run_id} is not yours: only the visitor who started it can stop it")
        return row.status

    # -- ending runs from outside ----------------------------------------------------------
    def interrupt_silent(self, limit_s: float = HEARTBEAT_LIMIT_S, schedulers=None,
                         who: str = "training process") -> list[int]:
        """running / stopping -> interrupted for every run whose heartbeat is older than
        `limit_s` (its runner is gone, whatever host it was on), only those submitted to
        `schedulers` if given; the message says the `who` stopped -> their ids."""
        stale = sa.or_(runs.c.heartbeat_at.is_(None), runs.c.heartbeat_at < db_now(self.engine) - limit_s)
        q = sa.select(runs.c.id).where(runs.c.status.in_(TRAINING), stale)
        if schedulers is not None:
            q = q.where(runs.c.scheduler.in_(list(schedulers)))
        with self.engine.connect() as c:
            ids = c.execute(q).scalars().all()
        return self._interrupt(ids, [stale], lambda n: interrupted_message(who, n))

    def interrupt_lost_worker(self, run_id: int, worker: str) -> bool:
        """running / stopping -> interrupted: the scheduler of the run has lost `worker`, the
        worker that holds it."""
        return bool(self._interrupt([run_id], [runs.c.worker == worker], lambda n: interrupted_message("worker", n)))

    def _interrupt(self, ids, conditions, message: Callable[[int], str]) -> list[int]:
        changed = []
        with self._write() as c:
            for run_id in ids:
                n = _finished_epochs(c, run_id)
                done = c.execute(runs.update().where(runs.c.id == run_id, runs.c.status.in_(TRAINING), *conditions)
                                 .values(status="interrupted", ended_at=time.time(), error=message(n)))
                if done.rowcount == 1:
                    changed.append(run_id)
        return changed

    def lose_queued(self, run_ids, error: str) -> list[int]:
        """queued -> interrupted: the cluster lost their tasks before they started -> the ids changed."""
        changed = []
        with self._write() as c:
            for run_id in run_ids:
                done = c.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "queued")
                                 .values(status="interrupted", ended_at=time.time(), error=error))
                if done.rowcount == 1:
                    changed.append(run_id)
        return changed

    def force_stop(self, run_id: int, worker: str, pid: int | None, grace_s: float,
                   kill: Callable[[], None]) -> bool:
        """stopping -> stopped by force, calling kill() (which ends the worker process) inside
        the same transaction, and only if the run is still stopping on `worker` (and `pid`)
        with its Stop older than `grace_s`. The row stays locked until kill() returns, so the
        worker cannot end this run and take another before it dies. -> whether it happened."""
        asked_before = db_now(self.engine) - grace_s
        with self._write() as c:
            n = _finished_epochs(c, run_id)
            cond = [runs.c.id == run_id, runs.c.status == "stopping", runs.c.worker == worker,
                    runs.c.stop_requested_at < asked_before]
            if pid is not None:
                cond.append(runs.c.pid == pid)
            kept = f"the model of epoch {n} is kept" if n else "no epoch had finished, so there is no model"
            done = c.execute(runs.update().where(*cond).values(
                status="stopped", ended_at=time.time(),
                error=f"it did not stop within {grace_s:.0f} s, so its worker was restarted; {kept}"))
            if done.rowcount != 1:
                return False
            kill()  # still inside the transaction: the row is ours until the worker is gone
            return True


__all__ = ["ACTIVE", "CLI_OWNER", "ENDED", "HEARTBEAT_LIMIT_S", "HEARTBEAT_S", "Lifecycle", "NotAllowed",
           "STATES", "TRAINING", "interrupted_message"]
