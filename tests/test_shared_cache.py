"""What every visitor of a stored model or run shares in one server process (ui.resources'
model and ui.figcache): built once, the same object for every caller, never written to. On the
test session's SQLite store (conftest.py) with a tiny model trained and stored here."""

import numpy as np
import pytest

from mnistnet import MLP, TrainConfig, metrics
from mnistnet.runs import train_recorded
from mnistnet.store import Store
from ui import figcache, resources


@pytest.fixture(scope="module")
def stored(tiny_mnist):
    store = Store()
    rec = train_recorded(store, MLP((784, 16, 10), seed=3), tiny_mnist, TrainConfig(epochs=2, seed=3), "test")
    return rec, (rec.model_id, store.model_sha256(rec.model_id))


def test_a_stored_model_is_loaded_once_and_read_only(stored):
    rec, key = stored
    a, b = resources.model(*key), resources.model(*key)
    assert a is b  # one copy for every session
    for W, want in zip(a.weights, Store().load_model(key[0]).weights):
        assert np.array_equal(W, want)
    with pytest.raises(ValueError, match="read-only"):
        a.weights[0][0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        a.biases[-1] += 1.0
    # Predictions need no writes to the parameters.
    probs = a.predict_proba(np.zeros((3, 784), np.uint8))
    assert probs.shape == (3, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_a_models_confusion_figure_is_shared_per_view(stored, tiny_mnist):
    _, key = stored
    m = resources.model(*key)
    cm = metrics.confusion_matrix(tiny_mnist.test.labels, m.predict(tiny_mnist.test.images))
    fig = figcache.confusion_figure(key, cm, False, (3, 5))
    assert figcache.confusion_figure(key, cm, False, (3, 5)) is fig
    other = figcache.confusion_figure(key, cm, True, (3, 5))
    assert other is not fig and figcache.confusion_figure(key, cm, False, None) is not fig
    # A model not in the store is never cached: a new figure each time.
    assert figcache.confusion_figure(None, cm, False, None) is not figcache.confusion_figure(None, cm, False, None)
    # The shared figure shows this model's counts (as text on the heat map).
    shown = np.array([[int(t.replace(",", "")) for t in row] for row in fig.data[0].text])
    assert np.array_equal(shown, cm)


def test_a_runs_figures_are_rebuilt_only_when_it_changes(stored):
    rec, _ = stored
    epochs = rec.history.epochs
    losses = rec.history.batch_losses
    figs = figcache.epoch_figures((rec.run_id, 1.0, len(epochs), "finished"), epochs, losses, 100, None)
    again = figcache.epoch_figures((rec.run_id, 1.0, len(epochs), "finished"), epochs, losses, 100, None)
    assert again is figs and len(figs) == 3
    fewer = figcache.epoch_figures((rec.run_id, 1.0, 1, "running"), epochs[:1], losses, 100, 2)
    assert fewer is not figs
    assert len(fewer[0].data[0].x) < len(figs[0].data[0].x)
