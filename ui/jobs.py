"""Training from the lab: every run (Train page, the default model, fine-tuning) is a row of the
store queued on the training cluster (mnistnet.cluster); pages follow it by polling the store.

Imports streamlit, mnistnet and the ui layers below (resources, session). Nothing about a run
lives in this server's memory: a reload, a new tab or another server finds it in the store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mnistnet import Progress, TrainConfig, preset
from mnistnet.net import Net, run_layout
from mnistnet.presets import DEFAULT_PRESET
from mnistnet.runs import fine_tune_config
from mnistnet.store import ACTIVE, NotAllowed, StoreError
from ui import resources, session

MAX_ACTIVE_PER_VISITOR = 1  # Train-page runs a visitor may have queued or running at once
log = logging.getLogger("mnistnet.app")


class JobError(RuntimeError):
    """A run could not be started or stopped; the message is one sentence for the page."""


@dataclass(frozen=True)
class Snapshot:
    """A run as the pages show it: plain data from the store."""

    id: int
    status: str  # one of mnistnet.store.lifecycle.STATES
    layer_sizes: tuple[int, ...]
    config: dict
    n_train: int  # training images per epoch
    progress: Progress | None
    epochs: list[dict]  # History epoch records so far
    batch_losses: list[list[float]]  # [samples seen, mean loss since the previous point]
    error: str | None
    note: str | None  # whether it became the current model
    started: float
    ended: float | None
    ahead: int  # queued runs before this one
    stop_requested: bool
    owner: str | None
    net: str | None = None  # the layer stack's line; None for a dense ReLU network

    @property
    def network(self) -> str:
        """How the pages name its network: the line, or the sizes '784-512-256-10'."""
        return self.net or "-".join(str(s) for s in self.layer_sizes)

    @property
    def running(self) -> bool:
        return self.status in ACTIVE

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
        if self.status != "running" or p is None or p.samples_per_s <= 0:
            return None
        return (p.total_samples - p.samples_seen) / p.samples_per_s


def snapshot(run_id: int) -> Snapshot | None:
    store = resources.store()
    row = store.run(run_id)
    if row is None:
        return None
    cfg = row["config"]
    n = len(session.data().train.labels)
    progress = Progress(**row["progress"]) if row["progress"] else None
    ahead = store.queue_position(run_id) if row["status"] == "queued" else 0
    return Snapshot(row["id"], row["status"], tuple(row["layer_sizes"]), cfg,
                    min(n, cfg.get("train_size") or n), progress, store.run_epochs(run_id), row["losses"],
                    row["error"], row["spec"].get("note"), row["started_at"], row["ended_at"], ahead,
                    row["stop_requested"], row["owner"], row["spec"].get("net"))


def _submit(owner: str, layer_sizes, config: TrainConfig, origin: str, **kw) -> int:
    """A queued row, then its task on the cluster -> the run id."""
    session.data()  # MNIST is in the store before a worker looks for it
    try:
        cluster = resources.trainer().get()
    except RuntimeError as e:
        raise JobError(str(e)) from None
    store = resources.store()
    run_id = store.submit_run(owner, layer_sizes, config.to_dict(), origin, scheduler=cluster.address, **kw)
    try:
        cluster.submit(run_id)
    except Exception:
        log.exception("could not submit run %s", run_id)
        store.fail_unstarted(run_id, "the training cluster did not take the run")
        raise JobError("the training cluster did not take the run; try again in a moment") from None
    return run_id


def my_active(owner: str, origins=("app",)) -> list[dict]:
    return [r for r in resources.store().list_runs(owner=owner, statuses=ACTIVE) if r["origin"] in origins]


def start(arch: tuple[int, ...] | str, config: TrainConfig) -> int:
    """Queue a Train-page run of `arch` (hidden sizes, or a network's line) for this visitor
    -> its id. JobError if they have one going."""
    owner = session.owner()
    if len(my_active(owner)) >= MAX_ACTIVE_PER_VISITOR:
        raise JobError("You already have a run queued or training: stop it or wait for it to end.")
    sizes, spec = run_layout(arch)
    return _submit(owner, sizes, config, "app", spec={"make_current": True, **spec})


def latest(owner: str, origins=("app",)) -> dict | None:
    """The visitor's newest run of these origins (running or not)."""
    for r in resources.store().list_runs(owner=owner, limit=20):
        if r["origin"] in origins:
            return r
    return None


def stop(run_id: int) -> str | None:
    """Stop one of this visitor's runs -> a sentence if it cannot be done, else None."""
    store = resources.store()
    try:
        status = store.request_stop(run_id, session.owner())
    except StoreError as e:  # NotAllowed or no such run: one sentence
        return str(e)
    if status == "cancelled":  # it was queued: drop its task too
        try:
            resources.trainer().get().cancel(run_id)
        except Exception:  # the row says stopped: the task finds that and does nothing
            log.exception("could not cancel the task of run %s", run_id)
    return None


def start_default() -> int:
    """Train the lab's default model (preset DEFAULT_PRESET) once per store -> its run id."""
    raw = resources.store().get_meta(session.DEFAULT_RUN)
    run = session.default_run()
    if run is not None and (run["status"] in ACTIVE or run["status"] == "finished"):
        return run["id"]
    hidden, config = preset(DEFAULT_PRESET)
    run_id = _submit(session.SERVER_OWNER, (784, *hidden, 10), config, "default")
    if not resources.store().swap_meta(session.DEFAULT_RUN, raw, str(run_id)):
        stop_unowned(run_id)  # another server or session started it meanwhile: theirs goes on
        return int(resources.store().get_meta(session.DEFAULT_RUN))
    return run_id


def stop_unowned(run_id: int) -> None:
    try:
        resources.store().request_stop(run_id, session.SERVER_OWNER)
    except NotAllowed:
        pass


def start_sweep(spec, n_train: int) -> int:
    """Queue a sweep's runs for this visitor -> the sweep's id. JobError if one of theirs is
    still going, or the cluster cannot take it."""
    owner = session.owner()
    if my_active(owner, ("sweep",)):
        raise JobError("You already have a sweep going: stop it or wait for it to end.")
    session.data()
    try:
        return resources.trainer().get().submit_sweep(owner, spec, n_train)
    except RuntimeError as e:
        raise JobError(str(e)) from None


def stop_sweep(sweep_id: int) -> str | None:
    """Stop every queued or running run of one of this visitor's sweeps; a sentence or None."""
    for r in resources.store().list_runs(sweep_id=sweep_id, statuses=ACTIVE):
        if msg := stop(r["id"]):
            return msg
    return None


def start_fine_tune(entry: session.ModelEntry, everyone: bool) -> int:
    """Queue fine-tuning of a copy of `entry`'s model on the visitor's digits (and everyone's
    if asked) mixed into MNIST -> the run id."""
    owner = session.owner()
    if my_active(owner, ("finetune",)):
        raise JobError("Fine-tuning is already queued or running for you: wait for it to end.")
    if entry.model_id is None:
        raise JobError("This model is not in the store; train or load one first.")
    if entry.dataset != "mnist":  # drawings are digits: they never mix into another data set
        raise JobError(f"This model reads {entry.dataset_title}; fine-tuning on your digits is for MNIST models.")
    return _submit(owner, entry.model.layer_sizes, fine_tune_config(), "finetune", base_model_id=entry.model_id,
                   spec={"make_current": True, "everyone": bool(everyone),
                         **({"net": entry.model.spec} if isinstance(entry.model, Net) else {})})
