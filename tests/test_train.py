"""Training on the real data: sanity accuracy, determinism, callbacks, stop, divergence, bad configs."""

import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest

from mnistnet import MLP, PRESETS, TrainConfig, TrainingDiverged, load_mnist, preset, train
from mnistnet.data import DATASETS, MNIST, Split
from mnistnet.train import lr_factor


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def small(mnist):
    """2,000 train / 500 val / 1,000 test real images: quick runs."""
    return MNIST(train=Split(mnist.train.images[:2000], mnist.train.labels[:2000]),
                 val=Split(mnist.val.images[:500], mnist.val.labels[:500]),
                 test=Split(mnist.test.images[:1000], mnist.test.labels[:1000]))


def test_one_epoch_on_10000_images_reaches_90_percent(mnist):
    model = MLP((784, 256, 128, 10), seed=0)
    hist = train(model, mnist, TrainConfig(epochs=1, train_size=10_000))
    test = hist.epochs[-1]["test"]
    assert test["total"] == 10_000 and test["accuracy"] == test["correct"] / 10_000
    assert test["accuracy"] >= 0.90, test["accuracy"]
    assert hist.epochs[-1]["train"]["total"] == 10_000
    # the model's own predictions agree with the recorded counts
    assert int((model.predict(mnist.test.images) == mnist.test.labels).sum()) == test["correct"]


def test_history_has_every_metric_and_is_json(small):
    hist = train(MLP((784, 32, 10), seed=1), small, TrainConfig(epochs=2, batch_size=64))
    assert hist.status == "finished" and len(hist.epochs) == 2
    rec = hist.epochs[-1]
    for split, n in (("train", 2000), ("val", 500), ("test", 1000)):
        m = rec[split]
        assert m["total"] == n and 0 <= m["correct"] <= n and math.isfinite(m["loss"])
        assert len(m["per_digit_errors"]) == 10 and sum(m["per_digit_errors"]) == n - m["correct"]
    cm = np.array(rec["test"]["confusion"])
    assert cm.shape == (10, 10) and cm.sum() == 1000 and np.trace(cm) == rec["test"]["correct"]
    assert np.array_equal(cm.sum(axis=1), np.bincount(small.test.labels, minlength=10))
    assert rec["seconds"] > rec["train_seconds"] > 0
    assert hist.batch_losses and hist.batch_losses[-1][0] == 2 * 2000
    again = json.loads(json.dumps(hist.to_dict()))
    assert again == hist.to_dict()


def test_same_seed_same_run_other_seed_differs(small):
    cfg = TrainConfig(epochs=2, batch_size=50, seed=7)
    runs = []
    for seed, cfg_seed in ((7, 7), (7, 7), (8, 8)):
        m = MLP((784, 24, 10), seed=seed)
        h = train(m, small, replace(cfg, seed=cfg_seed))
        runs.append((m, h))
    (a, ha), (b, hb), (c, hc) = runs
    assert all(np.array_equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert _without_times(ha) == _without_times(hb)
    assert not np.array_equal(a.weights[0], c.weights[0])
    assert _without_times(ha) != _without_times(hc)


def _without_times(h):
    d = h.to_dict()
    for e in d["epochs"]:
        e.pop("seconds"), e.pop("train_seconds")
    return d


def test_reshuffles_every_epoch_and_sees_every_image_once(small):
    """With a learning rate too small to change a float32 weight, each batch's loss is a fixed
    function of which images it holds: the batches of the two epochs differ (a new order), and
    each epoch's batches average to the loss over all 2,000 images (each image once)."""
    model = MLP((784, 8, 10))
    hist = train(model, small, TrainConfig(epochs=2, batch_size=50, learning_rate=1e-12, progress_every=1))
    losses = np.array([loss for _, loss in hist.batch_losses]).reshape(2, 40)  # (epoch, batch)
    full = hist.epochs[0]["train"]["loss"]
    assert hist.epochs[1]["train"]["loss"] == pytest.approx(full, rel=1e-6)  # the weights stood still
    assert losses.mean(axis=1) == pytest.approx([full, full], rel=1e-5)
    assert not np.allclose(losses[0], losses[1])
    assert not np.allclose(np.sort(losses[0]), np.sort(losses[1]))  # other batches, not the same ones reordered


def test_progress_and_stop(small):
    events = []

    def on_progress(p):
        events.append(p)
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] >= 15  # stop after 15 batches of the first epoch
    model = MLP((784, 16, 10))
    hist = train(model, small, TrainConfig(epochs=3, batch_size=50, progress_every=5),
                 on_progress=on_progress, should_stop=should_stop)
    assert hist.status == "stopped" and len(hist.epochs) == 1 and hist.epochs[0]["partial"]
    assert [e.batch for e in events if e.epoch_record is None] == [5, 10, 15]
    assert events[-1].epoch_record is hist.epochs[0]
    assert events[-2].samples_seen == 15 * 50 and events[-2].total_samples == 3 * 2000
    assert all(e.samples_per_s > 0 and math.isfinite(e.running_loss) for e in events)
    assert model.history is hist


def test_divergence_names_lr_and_keeps_last_finite_epoch(small):
    model = MLP((784, 256, 128, 10), seed=0)
    train(model, small, TrainConfig(epochs=1))
    good = model.copy_parameters()
    with pytest.raises(TrainingDiverged, match="learning_rate=10") as e:
        train(model, small, TrainConfig(epochs=2, learning_rate=10.0))
    # lr 10 blows up within the first epoch: nothing of this run is kept
    assert re.search(r"at epoch 1, batch \d+ with", str(e.value)), str(e.value)
    assert "keeps the weights of epoch 0." in str(e.value), str(e.value)
    assert model.history.status == "failed" and model.history.epochs == []
    assert all(np.isfinite(p).all() for p in model.parameters())
    assert all(np.array_equal(x, y) for x, y in zip(model.parameters(), good))


def test_divergence_in_the_second_epoch_keeps_the_first(small):
    """A run whose weights overflow after its first epoch stops at the second epoch's first
    batch, names it, and keeps the first epoch's weights (not the starting ones)."""
    model = MLP((784, 16, 10), seed=0)
    start = model.copy_parameters()
    after_first = []

    def on_progress(p):
        if p.epoch_record is not None and p.epoch == 1:
            after_first.extend(model.copy_parameters())
            model.weights[0][...] = np.inf  # as if a step had overflowed
    with pytest.raises(TrainingDiverged) as e:
        train(model, small, TrainConfig(epochs=3, batch_size=100), on_progress=on_progress)
    assert "at epoch 2, batch 1 with learning_rate=0.13" in str(e.value), str(e.value)
    assert "keeps the weights of epoch 1." in str(e.value), str(e.value)
    assert model.history.status == "failed" and [r["epoch"] for r in model.history.epochs] == [1]
    assert all(np.array_equal(x, y) for x, y in zip(model.parameters(), after_first))
    assert not np.array_equal(model.weights[0], start[0])  # the first epoch trained


def test_options_momentum_cosine_decay_shift(small):
    cfg = TrainConfig(epochs=2, batch_size=64, learning_rate=0.05, momentum=0.9, lr_schedule="cosine",
                      weight_decay=1e-4, shift_pixels=2, bias_learning_rate=0.01)
    hist = train(MLP((784, 32, 10)), small, cfg)
    assert hist.epochs[-1]["test"]["accuracy"] > 0.7  # 2,000 images, 2 epochs, strong augmentation
    assert lr_factor(cfg, 0, 100) == 1.0 and lr_factor(cfg, 50, 100) == pytest.approx(0.5)
    assert lr_factor(TrainConfig(), 99, 100) == 1.0


def test_presets():
    hidden, cfg = preset("seed")
    assert cfg == TrainConfig() and cfg.learning_rate == 0.13 and cfg.batch_size == 50 and cfg.epochs == 2
    assert cfg.bias_learning_rate is None and cfg.momentum == 0 and cfg.shift_pixels == 0
    assert len(hidden) == 2
    assert set(PRESETS) == {"seed", "default", "quick", "best", "cnn", "cnn-best"}
    from mnistnet.presets import PRESET_MEASURED, preset_summary
    from mnistnet.train import check_run_size
    from ui.forms import PRESET_LABELS

    assert set(PRESET_MEASURED) == set(DATASETS)
    for dataset, title in (("mnist", "on MNIST"), ("fashion", "on Fashion-MNIST")):
        assert set(PRESET_MEASURED[dataset]) == set(PRESETS) == set(PRESET_LABELS)
        for name in PRESETS:  # every preset fits the limits a visitor's run is held to, and says its figures
            arch, config = preset(name, dataset)
            assert config.dataset == dataset
            check_run_size(arch if isinstance(arch, str) else (784, *arch, 10), config, 50_000)
            summary = preset_summary(name, dataset)
            assert re.search(r"\d\d\.\d\d% .*in .*\d+ s " + title, summary), summary
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        preset("fast")
    with pytest.raises(ValueError, match="unknown data set 'cifar'"):
        preset("cnn", "cifar")


def test_a_preset_on_clothes_does_not_turn_or_slant_them():
    for name in ("default", "quick", "best", "cnn", "cnn-best"):
        _, digits = preset(name)
        _, clothes = preset(name, "fashion")
        assert digits.rotate_degrees > 0 and not digits.flip  # digits are turned, never mirrored
        assert clothes.rotate_degrees == clothes.shear_degrees == clothes.thickness == clothes.elastic_alpha == 0
        assert clothes.flip == name.startswith("cnn")  # mirroring lowered the MLP, not the CNN
    assert preset("seed", "fashion")[1] == replace(preset("seed")[1], dataset="fashion")  # the report's recipe as it is
    assert preset("default", "fashion")[0] == preset("default")[0]  # MLPs keep their widths
    assert preset("cnn", "fashion")[0] == "conv 16x5 same - pool - conv 32x5 - pool - dense 128"  # edges kept


@pytest.mark.parametrize("field, value", [
    ("learning_rate", 0), ("learning_rate", -0.1), ("learning_rate", float("nan")),
    ("learning_rate", float("inf")), ("batch_size", 0), ("batch_size", 2.5), ("epochs", 0),
    ("momentum", 1.0), ("lr_schedule", "step"), ("weight_decay", -1), ("shift_pixels", 9),
    ("bias_learning_rate", 0), ("seed", -1), ("train_size", 0),
])
def test_bad_hyperparameters_named(field, value):
    with pytest.raises(ValueError, match=field) as e:
        TrainConfig(**{field: value})
    assert repr(value) in str(e.value)


def test_config_round_trip():
    cfg = TrainConfig(momentum=0.5, lr_schedule="cosine")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"lr": 1})


def test_shift_augmentation_crops_padded_windows():
    from mnistnet.train import _Shifter
    model = MLP((784, 8, 10))
    imgs = np.zeros((3, 28, 28), np.uint8)
    imgs[:, 10, 12] = 255  # one bright pixel
    sh = _Shifter(model, imgs, 2)
    out = np.empty((3, 784), np.float32)
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(200):
        xb = sh.batch(np.array([0, 1, 2]), rng, out)
        for row in xb.reshape(3, 28, 28):
            (y, x), = np.argwhere(row == row.max())
            assert row.min() == model.scale_inputs(np.zeros((1, 784), np.uint8)).min()  # background stays 0
            seen.add((int(y) - 10, int(x) - 12))
    assert seen == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}  # every shift in +-2 px


# -- divergence on an epoch's last step ----------------------------------------------------------
def _same(params, other) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(params, other))


def test_an_update_that_overflows_on_the_epochs_last_step_is_caught(small):
    """A real overflow, no patching: W1 = 0, b1 = 1e-10 and a first column of 1e38 in W2 give a
    finite loss (class 0 wins by 4e28) and an error of about 1e37 per hidden unit, so the one
    step of each epoch (train_size = batch_size) drives W1 and b1 to +-inf. The loss check
    before each step never sees it; the check of the weights at the epoch's end must."""
    W2 = np.zeros((4, 10), np.float32)
    W2[:, 0] = 1e38
    model = MLP.from_arrays([np.zeros((784, 4), np.float32), W2],
                            [np.full(4, 1e-10, np.float32), np.zeros(10, np.float32)])
    start = model.copy_parameters()
    with pytest.raises(TrainingDiverged) as e:
        train(model, small, TrainConfig(epochs=1, batch_size=50, train_size=50, learning_rate=10.0))
    assert str(e.value).startswith("the weights became non-finite at epoch 1, batch 1 with learning_rate=10.0;")
    assert "keeps the weights of epoch 0." in str(e.value), str(e.value)
    assert model.history.status == "failed" and model.history.epochs == []
    assert all(np.isfinite(p).all() for p in model.parameters()) and _same(model.parameters(), start)


@pytest.mark.parametrize("stop", [False, True], ids=["last batch", "at a stop"])
def test_weights_gone_non_finite_at_an_epochs_end_or_a_stop_keep_the_last_epoch(small, stop):
    """As if the update of epoch 2's last batch (or of the batch before a stop) had overflowed:
    TrainingDiverged names that batch, and the model keeps epoch 1's weights, not NaNs."""
    model = MLP((784, 16, 10), seed=0)
    after_first, batches = [], [0]

    def on_progress(p):
        if p.epoch_record is not None and p.epoch == 1:
            after_first.extend(model.copy_parameters())

    def should_stop():  # polled after each batch's update: 20 batches an epoch
        batches[0] += 1
        if batches[0] == (30 if stop else 40):
            model.biases[-1][3] = np.nan
            return stop
        return False
    with pytest.raises(TrainingDiverged) as e:
        train(model, small, TrainConfig(epochs=2, batch_size=100), on_progress=on_progress,
              should_stop=should_stop)
    batch = 10 if stop else 20
    assert f"non-finite at epoch 2, batch {batch} with" in str(e.value), str(e.value)
    assert "keeps the weights of epoch 1." in str(e.value), str(e.value)
    assert model.history.status == "failed" and [r["epoch"] for r in model.history.epochs] == [1]
    assert all(np.isfinite(p).all() for p in model.parameters()) and _same(model.parameters(), after_first)


# -- empty splits --------------------------------------------------------------------------------
@pytest.mark.parametrize("split, name", [("train", "training"), ("val", "validation"), ("test", "test")])
def test_an_empty_split_is_named(small, split, name):
    empty = Split(small.train.images[:0], small.train.labels[:0])
    data = replace(small, **{split: empty})
    model = MLP((784, 8, 10))
    with pytest.raises(ValueError, match=f"the {name} split is empty"):
        train(model, data, TrainConfig(epochs=1))
    assert model.history is None  # refused before the run began


@pytest.mark.parametrize("value", [-1.0, float("nan"), "2", None])
def test_bad_stop_eval_s_named(small, value):
    with pytest.raises(ValueError, match="stop_eval_s") as e:
        train(MLP((784, 8, 10)), small, TrainConfig(epochs=1), stop_eval_s=value)
    assert repr(value) in str(e.value)


# -- a stop within a time budget -----------------------------------------------------------------
def _stopped_run(small, after_batches, stop_eval_s):
    """MLP 784-16-10 on `small` (40 batches an epoch, 3 epochs), stopped after `after_batches`
    batches -> (model, history, progress events, snapshot epochs, parameters after each epoch)."""
    model = MLP((784, 16, 10), seed=2)
    events, snapshots, kept, batches = [], [], {0: model.copy_parameters()}, [0]

    def on_progress(p):
        events.append(p)
        if p.epoch_record is not None:
            kept[p.epoch] = model.copy_parameters()

    def should_stop():
        batches[0] += 1
        return batches[0] == after_batches
    hist = train(model, small, TrainConfig(epochs=3, batch_size=50, progress_every=5), on_progress=on_progress,
                 should_stop=should_stop, on_snapshot=snapshots.append, stop_eval_s=stop_eval_s)
    return model, hist, events, snapshots, kept


def test_a_stop_with_no_time_to_measure_keeps_the_last_finished_epoch(small):
    model, hist, events, snapshots, kept = _stopped_run(small, 40 + 12, stop_eval_s=0)
    assert hist.status == "stopped" and [r["epoch"] for r in hist.epochs] == [1]
    assert not hist.epochs[0]["partial"]
    assert _same(model.parameters(), kept[1]) and not _same(model.parameters(), kept[0])
    assert [e.epoch_record is not None for e in events if e.epoch == 2] == [False, False, False]  # 5, 10, 12
    assert events[-1].batch == 12 and hist.batch_losses[-1][0] == 52 * 50  # the steps it did are reported
    assert snapshots == [0.0, 0.05, 1.0]  # no snapshot of weights it does not keep
    assert model.history is hist


def test_a_stop_in_the_first_epoch_with_no_time_to_measure_keeps_the_initial_weights(small):
    for budget in (0.0, 1e-9):  # 1e-9: the test split's evaluation alone takes longer
        model, hist, events, snapshots, kept = _stopped_run(small, 15, stop_eval_s=budget)
        assert hist.status == "stopped" and hist.epochs == []
        assert _same(model.parameters(), kept[0])
        assert all(e.epoch_record is None for e in events) and snapshots == [0.0, 0.05]


@pytest.mark.parametrize("after_batches", [15, 40 + 12], ids=["epoch 1", "epoch 2"])
def test_a_stop_with_time_to_measure_records_the_partial_epoch(small, after_batches):
    """60 s is plenty for 3,500 images: the partial epoch is measured as it always was, the same
    metrics whether its time was estimated (60 s) or not asked for (inf)."""
    model, hist, events, snapshots, kept = _stopped_run(small, after_batches, stop_eval_s=60.0)
    epoch = 1 if after_batches < 40 else 2
    assert hist.status == "stopped" and len(hist.epochs) == epoch and hist.epochs[-1]["partial"]
    assert events[-1].epoch_record is hist.epochs[-1] and snapshots[-1] == float(epoch)
    assert _same(model.parameters(), kept[epoch])
    for split, n in (("train", 2000), ("val", 500), ("test", 1000)):
        assert hist.epochs[-1][split]["total"] == n
    assert "confusion" in hist.epochs[-1]["test"] and "confusion" not in hist.epochs[-1]["train"]
    _, always, *_ = _stopped_run(small, after_batches, stop_eval_s=math.inf)
    assert _without_times(always) == _without_times(hist)
    assert list(always.epochs[-1]) == list(hist.epochs[-1])  # the same keys in the same order


def test_the_stop_estimate_is_the_last_epochs_measuring_time(small):
    """After a finished epoch the partial one is measured if that epoch's evaluation
    (seconds - train_seconds) fits the budget; no timing involved, records made up."""
    from mnistnet.metrics import Evaluator
    from mnistnet.train import _evaluate
    model = MLP((784, 8, 10))
    splits = {name: (model.scale_inputs(s.images), s.labels)
              for name, s in (("train", small.train), ("val", small.val), ("test", small.test))}
    last = {"seconds": 10.0, "train_seconds": 7.0}  # 3 s of evaluation
    ev = Evaluator(model, 2000)
    assert _evaluate(ev, splits, 2.9, last) is None
    got = _evaluate(ev, splits, 3.1, last)
    assert [got[k]["total"] for k in ("train", "val", "test")] == [2000, 500, 1000]
    assert _evaluate(ev, splits, math.inf, last) == got
