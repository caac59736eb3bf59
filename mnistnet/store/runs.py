"""Runs in the store: live progress, each finished epoch with its model, names, ownership,
reading them back. Their statuses change only in mnistnet.store.lifecycle (the Lifecycle mixin).

The store is the channel between the pages and the training workers: a worker writes progress
and epochs here, a page polls them, and Stop is a status the worker reads. Imports sqlalchemy
and the core.
"""

from __future__ import annotations

import json
import os
import socket
import time

import sqlalchemy as sa

from ..modelfile import model_bytes
from ..network import MLP
from .db import BaseStore, _check_owner
from .lifecycle import ACTIVE, CLI_OWNER, LOST_SCHEDULER_LIMIT_S, STATES, TRAINING, Lifecycle, NotAllowed, db_now
from .schema import StoreError, epochs, models, runs, snapshots, sweeps

RUN_STATUSES = STATES


def runner_name() -> str:
    """How a run's row names the process that trains it outside a cluster (the CLI)."""
    return f"process {os.getpid()} on {socket.gethostname()}"


def scheduler_answers(address: str | None, timeout: float = 1.0) -> bool:
    """Whether a Dask scheduler listens at `address` (tcp:// or tls://host:port); True for an
    address this cannot check."""
    if address is None or not address.startswith(("tcp://", "tls://")):
        return True
    host, _, port = address[len("tcp://"):].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _row(r) -> dict:
    test = json.loads(r["metrics"])["test"] if r["metrics"] else None
    return {"id": r["id"], "status": r["status"], "origin": r["origin"], "owner": r["owner"], "name": r["name"],
            "layer_sizes": json.loads(r["layer_sizes"]), "config": json.loads(r["config"]),
            "started_at": r["started_at"], "running_at": r["running_at"], "ended_at": r["ended_at"],
            "error": r["error"], "epochs": r["n"] or 0, "model_id": r["model_id"], "sweep_id": r["sweep_id"],
            "stop_requested": r["stop_requested_at"] is not None, "scheduler": r["scheduler"],
            "worker": r["worker"], "pid": r["pid"], "base_model_id": r["base_model_id"],
            "spec": json.loads(r["spec"]) if r["spec"] else {},
            "progress": json.loads(r["progress"]) if r["progress"] else None,
            "test_correct": test and test["correct"], "test_total": test and test["total"],
            "test_accuracy": test and test["accuracy"]}


class Store(BaseStore, Lifecycle):
    """The whole store: samples, models and drawings (BaseStore), runs and their transitions
    (Lifecycle, the only code that changes a run's status)."""

    def __init__(self, url: str | None = None):
        super().__init__(url)
        self.interrupt_silent()  # a runner killed while nobody watched: its run says so now

    def start_run(self, layer_sizes, config: dict, origin: str, owner: str = CLI_OWNER,
                  spec: dict | None = None) -> int:
        """A run that starts at once in this process (the CLI): queued, then claimed -> its id."""
        run_id = self.submit_run(owner, layer_sizes, config, origin, spec=spec)
        self.claim_run(run_id, worker=runner_name(), host=socket.gethostname(), pid=os.getpid())
        return run_id

    # -- while it runs ---------------------------------------------------------------------
    def set_progress(self, run_id: int, progress: dict, losses: list) -> None:
        with self._write() as c:
            c.execute(runs.update().where(runs.c.id == run_id).values(
                progress=json.dumps(progress), losses=json.dumps(losses)))

    def add_epoch(self, run_id: int, record: dict, model: MLP | None = None, snaps=(),
                  keep=None) -> int | None:
        """Record one finished epoch (a History epoch record) and, if given, the model as it is
        now (replacing the run's previous one, whose snapshots it takes over), with the new
        snapshots `snaps` (`mnistnet.snapshots.Snapshot`s) and only those of the epochs in
        `keep` (None: all), in one transaction -> the model id."""
        with self._write() as c:
            alive = c.execute(runs.update().where(runs.c.id == run_id, runs.c.status.in_(TRAINING))
                              .values(heartbeat_at=db_now(self.engine)))
            if alive.rowcount != 1:  # ended meanwhile (interrupted, stopped by force): not ours to add to
                return None
            c.execute(epochs.insert().values(run_id=run_id, epoch=int(record["epoch"]),
                                             test_accuracy=float(record["test"]["accuracy"]),
                                             metrics=json.dumps(record)))
            if model is None:
                return None
            model_id = self._replace_model(c, run_id, model, int(record["epoch"]))
            self._add_snapshots(c, model_id, snaps, keep)
            return model_id

    def _replace_model(self, c, run_id: int, model: MLP, epoch: int | None) -> int:
        """The run's model replaced by `model`; the snapshots move to the new row."""
        owner = c.execute(sa.select(runs.c.owner).where(runs.c.id == run_id)).scalar()
        old = c.execute(sa.select(models.c.id).where(models.c.run_id == run_id)).scalars().all()
        new = self._insert_model(c, model, f"run {run_id}", run_id, owner, epoch)
        if old:
            c.execute(snapshots.update().where(snapshots.c.model_id.in_(old)).values(model_id=new))
            c.execute(models.delete().where(models.c.id.in_(old)))
        return new

    # -- the visitor's controls ------------------------------------------------------------
    def _owned(self, c, run_id: int, owner: str, verb: str):
        row = c.execute(sa.select(runs.c.owner, runs.c.status).where(runs.c.id == run_id)).first()
        if row is None:
            raise StoreError(f"there is no run #{run_id}")
        if row.owner != owner:
            raise NotAllowed(f"run #{run_id} is not yours: only the visitor who started it can {verb} it")
        return row

    def rename_run(self, run_id: int, owner: str, name: str) -> None:
        name = " ".join(str(name).split())[:255]
        with self._write() as c:
            self._owned(c, run_id, owner, "rename")
            c.execute(runs.update().where(runs.c.id == run_id).values(name=name or None))

    def delete_run(self, run_id: int, owner: str) -> None:
        """Delete a run of `owner`'s with its epochs and model; never one that is queued or running."""
        with self._write() as c:
            row = self._owned(c, run_id, owner, "delete")
            if row.status in ACTIVE:
                raise NotAllowed(f"run #{run_id} is {row.status}: stop it first, then delete it")
            c.execute(epochs.delete().where(epochs.c.run_id == run_id))
            c.execute(models.delete().where(models.c.run_id == run_id))
            c.execute(runs.delete().where(runs.c.id == run_id))

    # -- reading ---------------------------------------------------------------------------
    def _query(self):
        last = (sa.select(epochs.c.run_id, sa.func.max(epochs.c.epoch).label("n"))
                .group_by(epochs.c.run_id).subquery())
        return (sa.select(runs, last.c.n, epochs.c.metrics, models.c.id.label("model_id"))
                .outerjoin(last, last.c.run_id == runs.c.id)
                .outerjoin(epochs, sa.and_(epochs.c.run_id == runs.c.id, epochs.c.epoch == last.c.n))
                .outerjoin(models, models.c.run_id == runs.c.id))

    def list_runs(self, owner: str | None = None, not_owner: str | None = None, sweep_id: int | None = None,
                  statuses=None, limit: int | None = None) -> list[dict]:
        """Runs, newest first, with their last epoch's test metrics and model id; filtered by
        owner (or all but `not_owner`), sweep and status."""
        q = self._query().order_by(runs.c.id.desc()).limit(limit)
        if owner is not None:
            q = q.where(runs.c.owner == owner)
        if not_owner is not None:
            q = q.where(sa.or_(runs.c.owner != not_owner, runs.c.owner.is_(None)))
        if sweep_id is not None:
            q = q.where(runs.c.sweep_id == sweep_id)
        if statuses is not None:
            q = q.where(runs.c.status.in_(list(statuses)))
        with self.engine.connect() as c:
            return [_row(r) for r in c.execute(q).mappings()]

    def run(self, run_id: int) -> dict | None:
        """One run as list_runs gives it, plus its loss points ('losses'); None if there is none."""
        with self.engine.connect() as c:
            r = c.execute(self._query().where(runs.c.id == run_id)).mappings().first()
            if r is None:
                return None
            out = _row(r)
            losses = c.execute(sa.select(runs.c.losses).where(runs.c.id == run_id)).scalar()
        out["losses"] = json.loads(losses) if losses else []
        return out

    def run_epochs(self, run_id: int) -> list[dict]:
        q = sa.select(epochs.c.metrics).where(epochs.c.run_id == run_id).order_by(epochs.c.epoch)
        with self.engine.connect() as c:
            return [json.loads(m) for (m,) in c.execute(q)]

    def queue_position(self, run_id: int) -> int:
        """How many queued runs were submitted before this one (0: next to start)."""
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(runs).where(
                runs.c.status == "queued", runs.c.id < run_id)).scalar())

    # -- runs whose cluster is gone ------------------------------------------------------
    def lose_unanswered(self, own_scheduler: str | None = None) -> list[int]:
        """Runs of a scheduler that no longer answers (it ended with its server) -> interrupted:
        queued ones at once, training ones once their heartbeat is LOST_SCHEDULER_LIMIT_S old
        (a worker that outlives its scheduler keeps beating, and keeps its run); -> their ids."""
        active = [r for r in self.list_runs(statuses=ACTIVE) if r["scheduler"] not in (None, own_scheduler)]
        gone = {a for a in {r["scheduler"] for r in active} if not scheduler_answers(a)}  # one probe each
        lost = [r["id"] for r in active if r["scheduler"] in gone and r["status"] == "queued"]
        return (self.lose_queued(lost, "the cluster it was queued on stopped before it started")
                + self.interrupt_silent(LOST_SCHEDULER_LIMIT_S, schedulers=gone, who="server"))

    # -- uploads and sweeps ----------------------------------------------------------------
    def add_uploaded_model(self, model: MLP, name: str, owner: str, note: str | None = None,
                           blob: bytes | None = None) -> tuple[int, int]:
        """Store an uploaded model as a finished run of origin 'upload' carrying the epochs of
        its own (validated) history, so it is listed, compared and linked like any run; `blob`
        is its file as uploaded (already checked by load_model). Snapshots the file carried
        (`model.snapshots`, set by load_model) are kept as the store keeps any, beside the
        model's file without them. -> (run id, model id)."""
        _check_owner(owner)
        snaps = getattr(model, "snapshots", None) or []
        if snaps:
            blob = model_bytes(model, snapshots=[])
        hist = model.history
        now = time.time()
        with self._write() as c:
            run_id = c.execute(runs.insert().values(
                layer_sizes=json.dumps(list(model.layer_sizes)), config=json.dumps(hist.config if hist else {}),
                status="finished", origin="upload", owner=owner, started_at=now, ended_at=now,
                error=note or f"uploaded as {name}",
            )).inserted_primary_key[0]
            for record in (hist.epochs if hist else []):
                c.execute(epochs.insert().values(run_id=run_id, epoch=int(record["epoch"]),
                                                 test_accuracy=float(record["test"]["accuracy"]),
                                                 metrics=json.dumps(record)))
            model_id = self._insert_model(c, model, name, run_id, owner, blob=blob)
            self._add_snapshots(c, model_id, snaps)
            return run_id, model_id

    def set_note(self, run_id: int, note: str) -> None:
        """A sentence about the run for its owner (e.g. whether it became the current model)."""
        with self._write() as c:
            self._set_note(c, run_id, note)

    def _set_note(self, c, run_id: int, note: str) -> None:
        spec = c.execute(sa.select(runs.c.spec).where(runs.c.id == run_id)).scalar()
        spec = {**(json.loads(spec) if spec else {}), "note": note}
        c.execute(runs.update().where(runs.c.id == run_id).values(spec=json.dumps(spec)))

    def adopt(self, run_id: int, worse_by: float = 0.05) -> str:
        """Make a run's model its owner's current model unless its test accuracy is more than
        `worse_by` below the current one's; -> the sentence saying which, also kept as the note.
        One transaction with the owner's current row locked: the comparison is with the model
        that is current when it is replaced."""
        run = self.run(run_id)
        if run is None or run["model_id"] is None:
            return ""
        acc = run["test_accuracy"]
        with self._write() as c:
            now = self._current_locked(c, run["owner"])
            old = now.test_accuracy if now is not None else None
            if acc is not None and old is not None and acc < old - worse_by:
                note = (f"Your current model ({100 * old:.2f}%) stays current: this run reached only "
                        f"{100 * acc:.2f}%. Use its model from the Runs page if you want it anyway.")
            else:
                self._set_current(c, run["owner"], run["model_id"], f"run #{run_id} ({run['origin']})", acc)
                note = "This run's model is now your current model: try it on the Analyze and Draw pages."
            self._set_note(c, run_id, note)
        return note

    def create_sweep(self, owner: str, spec: dict) -> int:
        _check_owner(owner)
        with self._write() as c:
            return c.execute(sweeps.insert().values(owner=owner, spec=json.dumps(spec), created_at=time.time())
                             ).inserted_primary_key[0]

    def sweep(self, sweep_id: int) -> dict | None:
        with self.engine.connect() as c:
            r = c.execute(sa.select(sweeps).where(sweeps.c.id == sweep_id)).mappings().first()
        return None if r is None else {"id": r["id"], "owner": r["owner"], "spec": json.loads(r["spec"]),
                                       "created_at": r["created_at"]}
