"""Runs in the store: the queue (queued -> running -> finished / stopped / failed /
interrupted), live progress, the stop flag, each finished epoch with its model, ownership.

The store is the channel between the pages and the training workers: a worker writes progress
and epochs here, a page polls them, and Stop is a flag the worker reads. Imports sqlalchemy
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
from .schema import StoreError, epochs, models, runs, snapshots, sweeps

RUN_STATUSES = ("queued", "running", "finished", "stopped", "interrupted", "failed")
ACTIVE = ("queued", "running")
CLI_OWNER = "cli"


class NotAllowed(StoreError):
    """The visitor may not do this to that run; the message says why."""


def _alive(host: str | None, pid: int | None) -> bool:
    if host != socket.gethostname() or not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def scheduler_answers(address: str | None, timeout: float = 1.0) -> bool:
    """Whether a Dask scheduler listens at `address` (tcp://host:port); True for an address
    this cannot check."""
    if address is None or not address.startswith("tcp://"):
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


def interrupted_message(who: str, finished_epochs: int) -> str:
    """'the server stopped during epoch 5; the model of epoch 4 is kept'."""
    kept = (f"; the model of epoch {finished_epochs} is kept" if finished_epochs
            else "; no epoch had finished, so there is no model")
    return f"the {who} stopped during epoch {finished_epochs + 1}{kept}"


class Store(BaseStore):
    """The whole store: samples, models and drawings (BaseStore), and runs."""

    def __init__(self, url: str | None = None):
        super().__init__(url)
        self.mark_dead_cli_runs()

    # -- submitting and claiming -----------------------------------------------------------
    def submit_run(self, owner: str, layer_sizes, config: dict, origin: str, scheduler: str | None = None,
                   base_model_id: int | None = None, spec: dict | None = None, sweep_id: int | None = None) -> int:
        """A new run, queued for a worker -> its id."""
        _check_owner(owner)
        with self._write() as c:
            return c.execute(runs.insert().values(
                layer_sizes=json.dumps(list(layer_sizes)), config=json.dumps(config), status="queued",
                origin=origin, owner=owner, started_at=time.time(), scheduler=scheduler,
                base_model_id=base_model_id, spec=json.dumps(spec or {}), sweep_id=sweep_id,
            )).inserted_primary_key[0]

    def claim_run(self, run_id: int, worker: str, host: str | None = None, pid: int | None = None) -> bool:
        """queued -> running on `worker`; False if it is no longer queued (stopped meanwhile)."""
        with self._write() as c:
            done = c.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "queued").values(
                status="running", running_at=time.time(), worker=worker, host=host, pid=pid))
            return done.rowcount == 1

    def start_run(self, layer_sizes, config: dict, origin: str, owner: str = CLI_OWNER) -> int:
        """A run that starts at once in this process (the CLI) -> its id."""
        run_id = self.submit_run(owner, layer_sizes, config, origin)
        self.claim_run(run_id, worker=f"process {os.getpid()}", host=socket.gethostname(), pid=os.getpid())
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

    def stop_requested(self, run_id: int) -> bool:
        with self.engine.connect() as c:
            row = c.execute(sa.select(runs.c.status, runs.c.stop_requested_at).where(runs.c.id == run_id)).first()
        return row is None or row.stop_requested_at is not None or row.status not in ACTIVE

    def stop_requested_at(self, run_id: int) -> float | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(runs.c.stop_requested_at).where(runs.c.id == run_id)).scalar()

    def end_run(self, run_id: int, status: str, model: MLP | None = None, error: str | None = None) -> int | None:
        """Set the final status of a queued or running run (a run already ended, e.g. stopped by
        force, keeps its status); store the model if given -> the run's model id, if any."""
        if status not in RUN_STATUSES or status in ACTIVE:
            raise ValueError(f"status must be one of {RUN_STATUSES[2:]}, got {status!r}")
        with self._write() as c:
            c.execute(runs.update().where(runs.c.id == run_id, runs.c.status.in_(ACTIVE))
                      .values(status=status, ended_at=time.time(), error=error))
            if model is not None:
                epoch = len(model.history.epochs) if model.history is not None else None
                return self._replace_model(c, run_id, model, epoch)
            return c.execute(sa.select(models.c.id).where(models.c.run_id == run_id)).scalar()

    # -- the visitor's controls ------------------------------------------------------------
    def _owned(self, c, run_id: int, owner: str, verb: str):
        row = c.execute(sa.select(runs.c.owner, runs.c.status).where(runs.c.id == run_id)).first()
        if row is None:
            raise StoreError(f"there is no run #{run_id}")
        if row.owner != owner:
            raise NotAllowed(f"run #{run_id} is not yours: only the visitor who started it can {verb} it")
        return row

    def request_stop(self, run_id: int, owner: str) -> str:
        """Stop a run: a queued one ends at once, a running one is asked to (the worker reads
        the flag); -> its status after the call."""
        with self._write() as c:
            row = self._owned(c, run_id, owner, "stop")
            now = time.time()
            if row.status == "queued":
                c.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "queued").values(
                    status="stopped", ended_at=now, stop_requested_at=now, error="stopped before it started"))
                return "stopped"
            if row.status == "running":
                c.execute(runs.update().where(runs.c.id == run_id, runs.c.stop_requested_at.is_(None))
                          .values(stop_requested_at=now))
            return row.status

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

    # -- ending runs from outside ----------------------------------------------------------
    def mark_ended(self, run_ids, status: str, message_for) -> list[int]:
        """Runs still queued or running -> `status`, each with message_for(finished epochs);
        -> the ids changed. The model of the last finished epoch stays."""
        changed = []
        with self._write() as c:
            for run_id in run_ids:
                n = c.execute(sa.select(sa.func.count()).select_from(epochs).where(epochs.c.run_id == run_id)).scalar()
                done = c.execute(runs.update().where(runs.c.id == run_id, runs.c.status.in_(ACTIVE))
                                 .values(status=status, ended_at=time.time(), error=message_for(int(n))))
                if done.rowcount:
                    changed.append(run_id)
        return changed

    def mark_lost_runs(self, own_scheduler: str | None = None) -> list[int]:
        """Runs left queued or running on a scheduler that no longer answers (it ended with its
        server) -> interrupted, keeping their last finished epoch's model; -> their ids."""
        lost = [r["id"] for r in self.list_runs(statuses=ACTIVE) if r["scheduler"] not in (None, own_scheduler)
                and not scheduler_answers(r["scheduler"])]
        return self.mark_ended(lost, "interrupted", lambda n: interrupted_message("server", n))

    def mark_dead_cli_runs(self) -> int:
        """Runs of a process on this host (the CLI) that no longer exists -> interrupted."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(runs.c.id, runs.c.host, runs.c.pid).where(
                runs.c.status == "running", runs.c.scheduler.is_(None))).all()
        dead = [r.id for r in rows if not _alive(r.host, r.pid)]
        return len(self.mark_ended(dead, "interrupted", lambda n: interrupted_message("process", n)))

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
            spec = c.execute(sa.select(runs.c.spec).where(runs.c.id == run_id)).scalar()
            spec = {**(json.loads(spec) if spec else {}), "note": note}
            c.execute(runs.update().where(runs.c.id == run_id).values(spec=json.dumps(spec)))

    def adopt(self, run_id: int, worse_by: float = 0.05) -> str:
        """Make a run's model its owner's current model unless its test accuracy is more than
        `worse_by` below the current one's; -> the sentence saying which, also kept as the note."""
        run = self.run(run_id)
        if run is None or run["model_id"] is None:
            return ""
        now = self.current(run["owner"])
        acc, old = run["test_accuracy"], now and now["test_accuracy"]
        if acc is not None and old is not None and acc < old - worse_by:
            note = (f"Your current model ({100 * old:.2f}%) stays current: this run reached only "
                    f"{100 * acc:.2f}%. Use its model from the Runs page if you want it anyway.")
        else:
            self.set_current(run["owner"], run["model_id"], f"run #{run_id} ({run['origin']})", acc)
            note = "This run's model is now your current model: try it on the Analyze and Draw pages."
        self.set_note(run_id, note)
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
