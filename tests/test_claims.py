"""The report's and the README's claims about the seed preset, checked on the real data.

The seed preset (784-512-256-10, SGD lr 0.13, batch 50, 2 epochs on the 50,000 training images)
is trained for seeds 0, 1 and 2 once for this module (about 15 s on this lab's 2-core machine), on
one BLAS thread as on the lab's workers: the same seed on more threads adds the products in
another order and lands a tenth of a point or two elsewhere, so one seed alone is no claim.
"""

from dataclasses import replace

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from mnistnet import MLP, load_mnist, preprocess_drawing, preset, train


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def seed_runs(mnist):
    """[(model, History)] of the seed preset trained on the full training set, one per seed."""
    hidden, config = preset("seed")
    runs = []
    with threadpool_limits(1):
        for seed in SEEDS:
            model = MLP((784, *hidden, 10), seed=seed)
            runs.append((model, train(model, mnist, replace(config, seed=seed))))
    return runs


@pytest.fixture(scope="module")
def seed_run(seed_runs):
    return seed_runs[0]


def test_the_seed_preset_reaches_97_percent(seed_runs, mnist):
    """The report's recipe: 97.2% test accuracy in the report; at least 97.0% here, as the mean
    over seeds 0, 1, 2 (each run's count checked against its model's own predictions)."""
    correct = [check_run(model, hist, mnist) for model, hist in seed_runs]
    assert sum(correct) / len(correct) >= 9_700, f"the seed preset reached {correct} / 10,000 for seeds {SEEDS}"


def check_run(model, hist, mnist) -> int:
    """The run's test count, after checking it is the seed preset's and the model's own."""
    hidden, config = preset("seed")
    assert model.layer_sizes == (784, 512, 256, 10) == (784, *hidden, 10)
    assert (config.learning_rate, config.batch_size, config.epochs) == (0.13, 50, 2)
    assert hist.status == "finished" and len(hist.epochs) == 2
    assert hist.epochs[-1]["train"]["total"] == 50_000
    test = hist.last("test")
    assert test["total"] == 10_000
    # the recorded count is the model's own: predictions on the raw test images agree
    assert int((model.predict(mnist.test.images) == mnist.test.labels).sum()) == test["correct"]
    return test["correct"]


def test_preprocessing_leaves_mnist_digits_nearly_unchanged(seed_run, mnist):
    """MNIST's test digits are already what `preprocess_drawing` makes of a canvas (a 20 px box,
    centred by mass): the seed model reads them through it within 0.3 points of reading them raw."""
    model, _ = seed_run
    prepared = np.stack([preprocess_drawing(image) for image in mnist.test.images])  # (10000, 28, 28) uint8
    assert prepared.shape == mnist.test.images.shape and prepared.dtype == np.uint8
    raw = int((model.predict(mnist.test.images) == mnist.test.labels).sum())
    through = int((model.predict(prepared) == mnist.test.labels).sum())
    assert abs(through - raw) <= 30, f"raw {raw:,}, preprocessed {through:,} of 10,000"
