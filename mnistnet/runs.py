"""Recorded training: one function that trains a run of the store and records it as it goes,
called by the CLI in its own process and by the cluster's tasks (mnistnet.tasks).

Imports the core and the store. A run row exists before training starts; while it trains,
its progress (a few writes a second at most), each finished epoch with the model as it is
then and its snapshots (mnistnet.snapshots: those taken since the last epoch, thinned to the
model's capacity), and at the end its status and final model. Stop is the run's status in the
store (stopping), read at least every STOP_POLL_S; a thread writes the run's heartbeat every
HEARTBEAT_S (mnistnet.store.lifecycle). Fine-tuning mixes the user's digits into MNIST.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from .data import MNIST, Split
from .metrics import evaluate_scaled
from .net import Net
from .network import MLP
from .snapshots import capacity, retained, take
from .store import CLI_OWNER, HEARTBEAT_S, Store, runner_name
from .train import History, TrainConfig, TrainingDiverged, train

PROGRESS_EVERY_S = 0.25  # at most four progress writes a second
STOP_POLL_S = 0.25  # the stop flag is read at least this often while a run trains
MAX_LOSS_POINTS = 2000  # loss-curve points kept per run (thinned by half when reached)
FINE_TUNE = {"epochs": 1, "learning_rate": 0.02, "user_share": 0.05}
log = logging.getLogger(__name__)


@dataclass
class RecordedRun:
    run_id: int
    model_id: int | None
    history: History


class _Heartbeat:
    """A thread that writes the run's heartbeat every HEARTBEAT_S while it trains; `lost` is
    set once the run is no longer this runner's (interrupted or stopped by someone else)."""

    def __init__(self, store: Store, run_id: int, worker: str):
        self.store, self.run_id, self.worker = store, run_id, worker
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"mnistnet-heartbeat-{run_id}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._done.wait(HEARTBEAT_S):
            try:
                if not self.store.heartbeat(self.run_id, self.worker):
                    self.lost.set()
                    return
            except Exception:  # the database is away for a moment: beat again next time
                log.exception("run %s: could not write its heartbeat", self.run_id)


class _Recorder:
    """Progress, snapshot and stop-flag traffic between the training loop and the store,
    rate-limited. Snapshots wait here until their epoch ends, and go to the store with it."""

    def __init__(self, store: Store, run_id: int, model: MLP, on_progress=None, should_stop=None,
                 planned_epochs: int = 1, lost: threading.Event | None = None):
        self.store, self.run_id, self.model, self.lost = store, run_id, model, lost
        self.on_progress, self.should_stop = on_progress, should_stop
        self.losses: list[list[float]] = []
        self._next_write = self._next_poll = 0.0
        self._stop = False
        # Snapshots are of dense layers (Inside's slider); a layer stack keeps none yet.
        self.planned, self.limit = planned_epochs, 0 if isinstance(model, Net) else capacity(model.layer_sizes)
        self.pending: list = []  # Snapshots taken since the last epoch was recorded
        self.kept: list[float] = []  # the epochs of the snapshots the store keeps for this run

    def snapshot(self, epoch: float) -> None:
        if self.limit:
            self.pending.append(take(self.model, epoch))

    def progress(self, p) -> None:
        now = time.monotonic()
        if p.epoch_record is not None:
            keep = retained(self.kept + [s.epoch for s in self.pending], self.planned, self.limit)
            new = [s for s in self.pending if s.epoch in keep]
            self.store.add_epoch(self.run_id, p.epoch_record, self.model, new, keep)
            self.pending, self.kept = [], keep
        else:
            self.losses.append([p.samples_seen, p.running_loss])
            if len(self.losses) > MAX_LOSS_POINTS:
                self.losses = self.losses[::2]
        if p.epoch_record is not None or now >= self._next_write:
            fields = {k: v for k, v in asdict(p).items() if k != "epoch_record"}
            self.store.set_progress(self.run_id, fields, self.losses)
            self._next_write = now + PROGRESS_EVERY_S
        if self.on_progress:
            self.on_progress(p)

    def stop(self) -> bool:
        if self.should_stop and self.should_stop() or self.lost is not None and self.lost.is_set():
            return True
        now = time.monotonic()
        if not self._stop and now >= self._next_poll:
            self._stop = self.store.should_stop(self.run_id)
            self._next_poll = now + STOP_POLL_S
        return self._stop


def execute_run(store: Store, run_id: int, model: MLP, data: MNIST, config: TrainConfig,
                on_progress=None, should_stop=None, worker: str | None = None) -> RecordedRun:
    """Train `model` as run `run_id` (already claimed by `worker`: running), recording it in
    `store` with a heartbeat. Re-raises TrainingDiverged after recording the run as failed
    (with its last finite model)."""
    worker = worker or runner_name()
    with _Heartbeat(store, run_id, worker) as beat:
        rec = _Recorder(store, run_id, model, on_progress, should_stop, config.epochs, beat.lost)
        try:
            hist = train(model, data, config, rec.progress, rec.stop, rec.snapshot)
        except TrainingDiverged as e:
            keep = model if model.history and model.history.epochs else None
            store.end_run(run_id, "failed", keep, error=str(e), worker=worker)
            raise
        except KeyboardInterrupt:  # Ctrl-C: the last finished epoch's model stays
            store.end_run(run_id, "interrupted", None, worker=worker,
                          error=f"interrupted during epoch {len(_epochs(model)) + 1}")
            raise
        except Exception:  # a bug: said in one sentence, the traceback goes to the log
            log.exception("run %s failed", run_id)
            store.end_run(run_id, "failed", None, worker=worker,
                          error="training stopped on an unexpected error (the server log has the details)")
            raise
        # A run stopped before its first epoch ended has no model worth keeping.
        keep = model if hist.epochs else None
        model_id = store.end_run(run_id, hist.status, keep, worker=worker)
    return RecordedRun(run_id, model_id, hist)


def _epochs(model: MLP) -> list:
    return model.history.epochs if model.history is not None else []


def train_recorded(store: Store, model: MLP, data: MNIST, config: TrainConfig, origin: str,
                   owner: str = CLI_OWNER, on_progress=None, should_stop=None) -> RecordedRun:
    """`train` in this process with the run recorded in `store` (the CLI's way)."""
    run_id = store.start_run(model.layer_sizes, config.to_dict(), origin, owner, spec=run_spec(model))
    return execute_run(store, run_id, model, data, config, on_progress, should_stop)


def run_spec(model) -> dict:
    """What a run's row must say beyond its layer sizes to rebuild `model`: a Net's line."""
    return {"net": model.spec} if isinstance(model, Net) else {}


def new_model(row: dict, seed: int):
    """A run row (layer sizes, spec) -> the untrained model it asks for: an MLP or a Net."""
    net = (row.get("spec") or {}).get("net")
    return Net(net, seed=seed) if net else MLP(row["layer_sizes"], seed=seed)


def user_samples(store: Store, owner: str, everyone: bool = False) -> Split:
    """`owner`'s labelled drawings and uploads (everyone's if `everyone`): (n, 28, 28) uint8,
    (n,) int64."""
    return store.load_split("user", owner=None if everyone else owner)


def mix_user_digits(data: MNIST, user: Split, user_share: float = FINE_TUNE["user_share"]) -> MNIST:
    """MNIST with `user` repeated into its training set to make up about `user_share` of it."""
    if len(user) == 0:
        raise ValueError("no labelled drawings or uploads to fine-tune on: keep a few drawings first")
    repeat = max(1, round(user_share * len(data.train) / len(user)))
    images = np.concatenate([data.train.images, np.repeat(user.images, repeat, axis=0)])
    labels = np.concatenate([data.train.labels, np.repeat(user.labels, repeat)])
    return MNIST(train=Split(images, labels), val=data.val, test=data.test)


def fine_tune_config(seed: int = 0) -> TrainConfig:
    return replace(TrainConfig(), epochs=FINE_TUNE["epochs"], learning_rate=FINE_TUNE["learning_rate"], seed=seed)


def measure(model: MLP, split: Split) -> dict:
    """Loss, accuracy and exact counts of `model` on `split`."""
    return evaluate_scaled(model, model.scale_inputs(split.images), split.labels)
