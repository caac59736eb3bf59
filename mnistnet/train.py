"""TrainConfig, the mini-batch SGD loop and its History (presets: mnistnet.presets).

Imports numpy and the core's own modules. The loop reads top to bottom: learning rate for
this step, forward, loss, backward, update, report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .augment import LIMITS as AUGMENT_LIMITS
from .augment import Augmenter, augmenting
from .data import DATASETS, Split
from .metrics import Evaluator
from .net import plan
from .network import MLP, check_layer_sizes, random_stream
from .sgd import Stepper
from .snapshots import early_batch

SCHEDULES = ("constant", "cosine")
MAX_BATCH = 10_000
MAX_EPOCHS = 100
MAX_SEED = 2**32 - 1  # what numpy's seeding takes as one word
MAX_LEARNING_RATE = 10.0
# Weights x training images x epochs of one run: about 25 minutes on one core of this lab's
# 2-core machine (the seed preset is 0.05 of it), so no run holds a worker for hours.
MAX_WORK = 1e13


class TrainingDiverged(RuntimeError):
    """The loss or the weights became non-finite; the model keeps the weights of the last finite epoch."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run. Defaults are the report's recipe (lr 0.13, batch 50, 2 epochs)."""

    batch_size: int = 50
    learning_rate: float = 0.13
    epochs: int = 2
    bias_learning_rate: float | None = None  # the report's eta_0; None means learning_rate
    seed: int = 0
    momentum: float = 0.0
    lr_schedule: str = "constant"  # or "cosine": decays to 0 over all steps
    weight_decay: float = 0.0  # L2 on weights (not biases)
    shift_pixels: int = 0  # random shifts of up to this many pixels (augmentation)
    # Augmentation (mnistnet.augment), drawn anew for every image of every batch; 0 is off.
    rotate_degrees: float = 0.0  # rotation by up to +- this
    scale: float = 0.0  # isotropic scale by a factor in 1 +- this
    shear_degrees: float = 0.0  # slant (horizontal shear) by up to +- this
    translate_pixels: float = 0.0  # sub-pixel translation by up to +- this along each axis
    thickness: float = 0.0  # strokes blended towards their 3x3 dilation (+) or erosion (-) by up to this
    elastic_alpha: float = 0.0  # elastic distortion (Simard et al. 2003): displacement scale in px
    elastic_sigma: float = 4.0  # smoothness of the elastic field: its Gaussian's std in px
    flip: bool = False  # mirror a random half of the images left to right (clothes, not digits)
    train_size: int | None = None  # use the first n training images; None = all
    progress_every: int = 20  # batches between on_progress calls
    dataset: str = "mnist"  # what it learns: a key of mnistnet.data.DATASETS ("fashion": Fashion-MNIST)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value."""
        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def real(v):
            return isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and math.isfinite(v)

        if not is_int(self.batch_size) or not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be an integer from 1 to {MAX_BATCH:,}, got {self.batch_size!r}")
        if not real(self.learning_rate) or not 0 < self.learning_rate <= MAX_LEARNING_RATE:
            raise ValueError(f"learning_rate must be a number above 0 and at most {MAX_LEARNING_RATE:g}, "
                             f"got {self.learning_rate!r}")
        if self.bias_learning_rate is not None and (
                not real(self.bias_learning_rate) or self.bias_learning_rate <= 0):
            raise ValueError(f"bias_learning_rate must be a finite number > 0, got {self.bias_learning_rate!r}")
        if not is_int(self.epochs) or not 1 <= self.epochs <= MAX_EPOCHS:
            raise ValueError(f"epochs must be an integer from 1 to {MAX_EPOCHS}, got {self.epochs!r}")
        if not is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer from 0 to {MAX_SEED:,}, got {self.seed!r}")
        if not real(self.momentum) or not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        if not real(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if not is_int(self.shift_pixels) or not 0 <= self.shift_pixels <= 4:
            raise ValueError(f"shift_pixels must be an integer in 0..4, got {self.shift_pixels!r}")
        for name, (lo, hi, unit) in AUGMENT_LIMITS.items():
            if not real(v := getattr(self, name)) or not lo <= v <= hi:
                raise ValueError(f"{name} must be a number from {lo:g} to {hi:g}{unit}, got {v!r}")
        if not isinstance(self.flip, (bool, np.bool_)):
            raise ValueError(f"flip must be true or false, got {self.flip!r}")
        if self.train_size is not None and (not is_int(self.train_size) or self.train_size < 1):
            raise ValueError(f"train_size must be an integer >= 1 or None, got {self.train_size!r}")
        if not is_int(self.progress_every) or self.progress_every < 1:
            raise ValueError(f"progress_every must be an integer >= 1, got {self.progress_every!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {str(self.dataset)[:40]!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Build from plain data; unknown keys raise ValueError naming them."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**d)


def check_run_size(arch, config: TrainConfig, n_train: int) -> None:
    """ValueError if training `arch` (an MLP's layer sizes, or a network's line) on `n_train`
    images for config.epochs would exceed MAX_WORK (multiply-adds per image x images x epochs;
    an MLP's are its weights), saying what to reduce."""
    if isinstance(arch, str):
        macs = plan(arch).macs()  # shapes only: ValueError names a bad token or limit
    else:
        macs = sum(a * b for a, b in zip(arch[:-1], arch[1:]))
    images = min(n_train, config.train_size or n_train)
    work = macs * images * config.epochs
    if work > MAX_WORK:
        raise ValueError(f"this run is {work / MAX_WORK:.1f} times larger than one run may be here "
                         f"({macs:,} multiply-adds per image x {images:,} images x {config.epochs} epochs); "
                         "use fewer epochs, fewer training images or smaller layers")


def dataset_of(model) -> str:
    """The data set `model` was trained on (a key of mnistnet.data.DATASETS): its History's
    config says; "mnist" for a model without one (an older file, or untrained)."""
    hist = getattr(model, "history", None)
    return hist.config.get("dataset", "mnist") if hist is not None else "mnist"


@dataclass
class History:
    """What a run measured, as plain JSON-serialisable data.

    epochs: one dict per finished epoch with keys epoch, seconds (with evaluation),
    train_seconds (SGD steps only), learning_rate, partial, train, val, test (each a
    metrics dict from `mnistnet.metrics.summarize`; only test keeps its
    confusion matrix). batch_losses: [samples seen, mean training loss since the last point].
    """

    layer_sizes: list[int]
    config: dict
    epochs: list[dict] = field(default_factory=list)
    batch_losses: list[list[float]] = field(default_factory=list)
    status: str = "running"  # running, finished, stopped, failed

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        """Rebuild from plain data (to_dict's output, e.g. read from a model file), checking
        everything the store, the CLI and the figures read from it. ValueError names the first
        missing, extra or mistyped value. Epochs must be numbered 1, 2, ...; a metrics "loss"
        may be inf or NaN (a diverging epoch), every accuracy and count is checked."""
        _check_keys("history", d, [f.name for f in fields(cls)])
        sizes = d["layer_sizes"]
        if not isinstance(sizes, list) or not all(_is_int(s) for s in sizes):
            raise ValueError(f"history layer_sizes must be a list of integers, got {sizes!r:.60}")
        try:
            check_layer_sizes(sizes)
        except ValueError as e:
            raise ValueError(f"history {e}") from None
        if not isinstance(d["config"], dict):
            raise ValueError(f"history config must be a dict, got {type(d['config']).__name__}")
        try:
            TrainConfig.from_dict(d["config"])
        except (ValueError, TypeError, OverflowError) as e:  # Overflow: an integer too large for a float
            raise ValueError(f"history config: {e}") from None
        if not isinstance(d["epochs"], list):
            raise ValueError(f"history epochs must be a list, got {type(d['epochs']).__name__}")
        for n, record in enumerate(d["epochs"], start=1):
            _check_epoch(record, n)
        points = d["batch_losses"]
        if not isinstance(points, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(_is_real(v) for v in p) for p in points):
            raise ValueError("history batch_losses must be a list of [samples seen, loss] number pairs")
        if d["status"] not in HISTORY_STATUSES:
            raise ValueError(f"history status must be one of {HISTORY_STATUSES}, got {d['status']!r:.40}")
        return cls(**d)

    def last(self, split: str = "test") -> dict | None:
        """The metrics dict of `split` in the last epoch, or None before the first epoch."""
        return self.epochs[-1][split] if self.epochs else None


HISTORY_STATUSES = ("running", "finished", "stopped", "failed")
_METRICS = ("loss", "accuracy", "correct", "total", "per_digit_errors")  # the test split adds "confusion"
_EPOCH_EXTRAS = ("seconds", "train_seconds", "learning_rate")  # optional numbers (older files lack some)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**53


def _is_real(v) -> bool:
    return _is_int(v) or isinstance(v, float) and math.isfinite(v)


def _check_keys(where: str, d, required, optional=()) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a dict, got {type(d).__name__}")
    missing = [k for k in required if k not in d]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(map(repr, missing))}")
    extra = sorted(str(k)[:40] for k in set(d) - set(required) - set(optional))
    if extra:
        raise ValueError(f"{where} has unexpected keys {extra[:5]}")


def _check_epoch(record, n: int) -> None:
    """One History epoch record, the n-th (1-based)."""
    where = f"history epoch {n}"
    _check_keys(where, record, ("epoch", "train", "val", "test"), (*_EPOCH_EXTRAS, "partial"))
    if not _is_int(record["epoch"]) or record["epoch"] != n:
        raise ValueError(f"{where}: 'epoch' must be {n}, got {record['epoch']!r:.40}")
    for key in _EPOCH_EXTRAS:
        if key in record and not _is_real(record[key]):
            raise ValueError(f"{where}: {key!r} must be a finite number, got {record[key]!r:.40}")
    if not isinstance(record.get("partial", False), bool):
        raise ValueError(f"{where}: 'partial' must be true or false, got {record['partial']!r:.40}")
    for split in ("train", "val", "test"):
        _check_metrics(f"{where} {split!r}", record[split], with_confusion=split == "test")


def _check_metrics(where: str, m, with_confusion: bool) -> None:
    """A metrics dict of `mnistnet.metrics.summarize` (confusion optional on the test split)."""
    _check_keys(where, m, _METRICS, ("confusion",) if with_confusion else ())
    if isinstance(m["loss"], bool) or not isinstance(m["loss"], (int, float)):
        raise ValueError(f"{where}: 'loss' must be a number, got {m['loss']!r:.40}")
    if not (_is_count(m["correct"]) and _is_count(m["total"]) and m["correct"] <= m["total"]):
        raise ValueError(f"{where}: 'correct' and 'total' must be counts with correct <= total, "
                         f"got {m['correct']!r:.20} and {m['total']!r:.20}")
    if not (_is_real(m["accuracy"]) and 0 <= m["accuracy"] <= 1):
        raise ValueError(f"{where}: 'accuracy' must be a number in [0, 1], got {m['accuracy']!r:.40}")
    if not _counts(m["per_digit_errors"]):
        raise ValueError(f"{where}: 'per_digit_errors' must be 10 counts")
    if "confusion" in m and not (isinstance(m["confusion"], list) and len(m["confusion"]) == 10
                                 and all(_counts(row) for row in m["confusion"])):
        raise ValueError(f"{where}: 'confusion' must be 10 rows of 10 counts")


def _is_count(v) -> bool:
    return _is_int(v) and v >= 0


def _counts(row) -> bool:
    return isinstance(row, list) and len(row) == 10 and all(_is_count(v) for v in row)


@dataclass
class Progress:
    """What a progress bar and live charts need; `epoch_record` is set when an epoch ends."""

    epoch: int  # 1-based
    epochs: int
    batch: int  # batches done in this epoch
    batches: int
    samples_seen: int
    total_samples: int
    running_loss: float
    samples_per_s: float
    elapsed: float
    epoch_record: dict | None = None


def lr_factor(config: TrainConfig, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rates at `step` (0-based) of `total_steps`."""
    if config.lr_schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    return 1.0


class _Shifter:
    """Random shifts of up to `shift` px per image (augmentation), gathered in one pass.

    Keeps the scaled training images zero-padded (background scales to the model's value
    of a 0 pixel) and a strided view of every 28x28 window: a batch is one fancy index.
    """

    def __init__(self, model: MLP, images: np.ndarray, shift: int):
        s = shift
        padded = np.pad(images, ((0, 0), (s, s), (s, s)))  # (N, 28+2s, 28+2s) uint8
        scaled = model.pixel_table()[padded]  # (N, 28+2s, 28+2s) float32
        # (N, 2s+1, 2s+1, 28, 28) view, no copy
        self.windows = np.lib.stride_tricks.sliding_window_view(scaled, (28, 28), axis=(1, 2))
        self.shift = s

    def batch(self, idx: np.ndarray, rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
        """idx: (n,) image rows -> out[:n] filled with (n, 784) float32 shifted images."""
        n = len(idx)
        oy, ox = rng.integers(0, 2 * self.shift + 1, size=(2, n))
        xb = out[:n]
        xb.reshape(n, 28, 28)[...] = self.windows[idx, oy, ox]
        return xb


def train(model: MLP, data, config: TrainConfig | None = None,
          on_progress: Callable[[Progress], None] | None = None,
          should_stop: Callable[[], bool] | None = None,
          on_snapshot: Callable[[float], None] | None = None,
          stop_eval_s: float = 2.0) -> History:
    """Train `model` in place with mini-batch SGD on data.train; measure train, val, test each epoch.

    data: as returned by `load_mnist()` (.train, .val, .test with .images (n, 28, 28) uint8
    and .labels (n,) int64), no split empty. Samples are reshuffled every epoch from `config.seed`.
    on_progress(Progress) is called every `config.progress_every` batches and after each
    epoch; should_stop() is polled after every batch and ends the run cleanly.
    On a stop the partial epoch is evaluated and recorded ("partial": True) only if that
    evaluation should take at most `stop_eval_s` seconds (estimated from the last finished
    epoch's evaluation, or in the first epoch by timing the test split's and scaling by image
    count; 0: never, inf: always); otherwise the model goes back to the weights of the last
    finished epoch (the initial ones in the first) and the History gets no record for it.
    Either way its status is "stopped". A caller with a deadline after the stop (a worker's
    grace period) sets stop_eval_s below it.
    on_snapshot(epoch) marks a moment worth a copy of the weights (`snapshots.take`): 0.0
    before the first step, a fraction (about 0.05) early in the first epoch, and n after
    epoch n's evaluation (a stopped, partial epoch too when it is evaluated), before that
    epoch's on_progress.
    Raises TrainingDiverged if the loss, or the weights at an epoch's end or a stop, become
    non-finite (weights of the last finite epoch are restored first). ValueError names an
    empty split or a bad stop_eval_s.
    """
    config = config or TrainConfig()
    config.validate()
    number = isinstance(stop_eval_s, (int, float, np.number)) and not isinstance(stop_eval_s, bool)
    if not (number and stop_eval_s >= 0):  # NaN fails this too
        raise ValueError(f"stop_eval_s must be a number of seconds >= 0 (inf: always evaluate), got {stop_eval_s!r}")
    for name, split in (("training", data.train), ("validation", data.val), ("test", data.test)):
        if len(split.labels) == 0:
            raise ValueError(f"the {name} split is empty (0 images); every run needs images to "
                             "train on and to measure with")
    # Overflow on the way to a diverged loss is reported by TrainingDiverged, not by warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        return _train(model, data, config, on_progress, should_stop, on_snapshot, stop_eval_s)


def _train(model, data, config, on_progress, should_stop, on_snapshot, stop_eval_s) -> History:
    hist = History(layer_sizes=list(model.layer_sizes), config=config.to_dict())
    model.history = hist
    images, labels = data.train.images, data.train.labels
    if config.train_size is not None:
        images, labels = images[:config.train_size], labels[:config.train_size]
    n, bs = len(labels), config.batch_size
    # Scaled once per process: (n, 784) float32. Eval sets too, so each epoch's metrics cost
    # no rescaling; one Evaluator's buffers serve every evaluation of the run.
    X = _scaled(model, data.train)[:n]
    splits = {"train": (X, labels), "val": (_scaled(model, data.val), data.val.labels),
              "test": (_scaled(model, data.test), data.test.labels)}
    evaluator = Evaluator(model, min(10000, max(len(y) for _, y in splits.values())))
    s = config.shift_pixels
    shifter = (Augmenter(images, config, model.pixel_table()) if augmenting(config)
               else _Shifter(model, images, s) if s else None)

    rng = random_stream(config.seed, "shuffle")  # the order of the samples
    aug_rng = random_stream(config.seed, "augment")  # shifts and distortions
    stepper = Stepper(model, config, min(bs, n))
    xbuf = np.empty((min(bs, n), 784), dtype=np.float32)
    batches = math.ceil(n / bs)
    total_steps = batches * config.epochs
    bias_lr = config.bias_learning_rate or config.learning_rate
    good = model.copy_parameters()
    early = early_batch(batches) if on_snapshot else None
    if on_snapshot:
        on_snapshot(0.0)
    start = time.perf_counter()
    step = 0
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        perm = rng.permutation(n)
        chunk_loss, chunk_batches = 0.0, 0
        stopped = False
        for b in range(batches):
            idx = perm[b * bs:(b + 1) * bs]
            m = len(idx)
            if shifter is not None:
                xb = shifter.batch(idx, aug_rng, xbuf)
            else:
                xb = np.take(X, idx, axis=0, out=xbuf[:m])
            yb = labels[idx]
            f = lr_factor(config, step, total_steps)
            loss = stepper.loss(xb, yb)
            if not math.isfinite(loss):
                _diverged(model, good, hist, f"loss became {loss}", epoch, b, config)
            stepper.update(yb, config.learning_rate * f, bias_lr * f)
            step += 1
            if step == early:
                on_snapshot(early / batches)
            chunk_loss += loss
            chunk_batches += 1
            stopped = bool(should_stop and should_stop())
            if chunk_batches == config.progress_every or b == batches - 1 or stopped:
                seen = (epoch - 1) * n + min((b + 1) * bs, n)
                hist.batch_losses.append([seen, chunk_loss / chunk_batches])
                if on_progress:
                    elapsed = time.perf_counter() - start
                    on_progress(Progress(epoch, config.epochs, b + 1, batches, seen, n * config.epochs,
                                         chunk_loss / chunk_batches, seen / max(elapsed, 1e-9), elapsed))
                chunk_loss, chunk_batches = 0.0, 0
            if stopped:
                break
        train_seconds = time.perf_counter() - t0
        # The loss check above sees an update only at the next step: the epoch's last one (or
        # the one before a stop) is checked here, before its weights are measured or kept.
        if not all(np.isfinite(p).all() for p in model.parameters()):  # 0.2 ms for 784-1024-1024-10
            _diverged(model, good, hist, "the weights became non-finite", epoch, b, config)
        metrics = _evaluate(evaluator, splits, stop_eval_s if stopped else math.inf,
                            hist.epochs[-1] if hist.epochs else None)
        if metrics is None:  # a stop whose evaluation would outlast stop_eval_s: keep the last epoch
            model.set_parameters(good)
            hist.status = "stopped"
            return hist
        record = {"epoch": epoch, "learning_rate": config.learning_rate * f, "partial": stopped, **metrics}
        # seconds: the whole epoch with its evaluation; train_seconds: the SGD steps alone.
        record["seconds"], record["train_seconds"] = time.perf_counter() - t0, train_seconds
        hist.epochs.append(record)
        good = model.copy_parameters()
        if on_snapshot:
            on_snapshot(float(epoch))
        if on_progress:
            elapsed = time.perf_counter() - start
            seen = hist.batch_losses[-1][0]
            on_progress(Progress(epoch, config.epochs, b + 1, batches, seen, n * config.epochs,
                                 hist.batch_losses[-1][1], seen / max(elapsed, 1e-9), elapsed, record))
        if stopped:
            hist.status = "stopped"
            return hist
    hist.status = "finished"
    return hist


def _diverged(model: MLP, good: list[np.ndarray], hist: History, what: str, epoch: int, b: int,
              config: TrainConfig):
    """Restore `good` (the last finished epoch's parameters), mark the run failed, raise."""
    model.set_parameters(good)
    hist.status = "failed"
    raise TrainingDiverged(
        f"{what} at epoch {epoch}, batch {b + 1} with learning_rate={config.learning_rate}; try a "
        f"smaller learning rate. The model keeps the weights of epoch {len(hist.epochs)}.")


def _evaluate(evaluator: Evaluator, splits: dict, budget_s: float, last: dict | None) -> dict | None:
    """splits: name -> (Xs (n, 784) float32 scaled, y (n,) int64) for train, val, test ->
    their metrics, test alone with its confusion matrix; or None when the evaluation is
    estimated to take more than budget_s seconds. The estimate is the last finished epoch's
    evaluation time (`last`, its record); before any, the test split's, timed, scaled by image
    count (test is then measured first, the results are the same)."""
    test = None
    if budget_s < math.inf:
        if last is not None:
            if last["seconds"] - last["train_seconds"] > budget_s:
                return None
        elif budget_s <= 0:
            return None
        else:
            t0 = time.perf_counter()
            test = evaluator.evaluate(*splits["test"])
            images = sum(len(y) for _, y in splits.values())
            if (time.perf_counter() - t0) * images / len(splits["test"][1]) > budget_s:
                return None
    return {"train": _without_confusion(evaluator.evaluate(*splits["train"])),
            "val": _without_confusion(evaluator.evaluate(*splits["val"])),
            "test": test or evaluator.evaluate(*splits["test"])}


def _scaled(model: MLP, split) -> np.ndarray:
    """split.images scaled for the model: (n, 784) float32, kept on an mnistnet Split."""
    if isinstance(split, Split):
        return split.scaled(model.pixel_table())
    return model.scale_inputs(split.images)


def _without_confusion(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "confusion"}
