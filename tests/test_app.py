"""AppTest tests of every page, on small injected data (see ui.session.INJECT_KEY) and a
visitor set by the test (ui.identity.OWNER_KEY: in a browser, the page's identity component
sets it).

Each test runs the real scripts (app.py and pages/) in-process: no browser, no MNIST load, no
training (the browser tests and tests/test_cluster.py train for real), so the file takes seconds.
"""

import secrets
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from mnistnet import preprocess_drawing, preset
from mnistnet.train import MAX_BATCH, MAX_EPOCHS, MAX_SEED
from ui import canvas, figures, identity, session

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ["app.py", "pages/1_Train.py", "pages/2_Analyze.py", "pages/3_Draw.py"]
TIMEOUT = 30


def visitor() -> str:
    """A new visitor's owner id, as ui.identity makes them."""
    return f"v-test{secrets.token_hex(12)}"


def open_page(page, data, model=None, query=None, session_state=None, owner=None):
    """Run app.py, then switch to `page`, as visitor `owner` (a new one by default), with
    `data` (and `model`, used while the visitor has no current model of their own) injected."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[session.INJECT_KEY] = session.Injected(data, model)
    at.session_state[identity.OWNER_KEY] = owner or visitor()
    for k, v in (session_state or {}).items():
        at.session_state[k] = v
    for k, v in (query or {}).items():
        at.query_params[k] = v
    if page == "app.py":
        return at.run()
    at.switch_page(page)
    return at.run()


def texts(at) -> str:
    """All the text an AppTest run put on the page, one string."""
    parts = []
    for kind in ("markdown", "caption", "info", "error", "success", "subheader", "title",
                 "metric", "warning"):
        for el in at.get(kind):
            parts.append(str(getattr(el, "value", "")))
            parts.append(str(getattr(el, "label", "")))
    return "\n".join(parts)


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


# -- every page ---------------------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES)
def test_page_runs_without_exception(page, tiny_mnist, tiny_model):
    at = open_page(page, tiny_mnist, tiny_model)
    no_exception(at)


def test_home_shows_the_model_and_exact_counts(tiny_mnist, tiny_model):
    at = open_page("app.py", tiny_mnist, tiny_model)
    metrics = {m.label: m for m in at.metric}
    assert metrics["Layer sizes"].value == "784-32-10"
    correct = int((tiny_model.predict(tiny_mnist.test.images) == tiny_mnist.test.labels).sum())
    assert f"{correct:,} / 1,000" in metrics["Test accuracy"].delta


def test_a_page_without_a_visitor_waits_for_the_browser(tiny_mnist, tiny_model):
    """The first run of a page, before the browser has handed over its key, shows nothing of
    anyone's: it waits (the key's arrival reruns it)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[session.INJECT_KEY] = session.Injected(tiny_mnist, tiny_model)
    at.run()
    no_exception(at)
    assert "Opening your lab" in texts(at) and not at.metric


# -- Train --------------------------------------------------------------------------------

def error_texts(at) -> list[str]:
    return [e.value for e in at.error]


@pytest.mark.parametrize("key, value, message", [
    ("learning_rate", 0.0, "Learning rate must be a number above 0 and at most 10, got 0.0"),
    ("learning_rate", 1e9, "Learning rate must be a number above 0 and at most 10, got 1000000000.0"),
    ("batch_size", 0, f"Batch size must be an integer from 1 to {MAX_BATCH:,}, got 0"),
    ("batch_size", 100_000, f"Batch size must be an integer from 1 to {MAX_BATCH:,}, got 100000"),
    ("epochs", 0, f"Epochs must be an integer from 1 to {MAX_EPOCHS}, got 0"),
    ("epochs", 100_000_000, f"Epochs must be an integer from 1 to {MAX_EPOCHS}, got 100000000"),
    ("train_size", 60000, "Training images must be at most 3,000"),
    ("hidden.1", 0, "every hidden layer size must be an integer >= 1, got 0"),
    ("hidden.1", 200_000, "Hidden layer size 200000 is over the limit of 2048"),
    ("rotate_degrees", 90.0, "Rotation must be a number from 0 to 45 degrees, got 90.0"),
    ("elastic_sigma", 0.0, "Elastic smoothness must be a number from 1 to 10 px, got 0.0"),
])
def test_train_form_refuses_bad_values_in_its_own_words(key, value, message, tiny_mnist):
    at = open_page("pages/1_Train.py", tiny_mnist)
    no_exception(at)
    assert not at.error
    at.number_input(key=f"train.w.{key}").set_value(value).run()
    no_exception(at)
    assert any(message.lower() in e.lower() for e in error_texts(at)), error_texts(at)
    assert not any("_" in e.split(" must")[0] for e in error_texts(at))  # no code names
    assert at.button(key="train.start").disabled


@pytest.mark.parametrize("seed, ok", [("99999999999999999999", False), (str(MAX_SEED + 1), False),
                                      ("-1", False), ("seven", False), (str(MAX_SEED), True), ("12", True)])
def test_the_seed_is_refused_or_used_exactly(seed, ok, tiny_mnist):
    at = open_page("pages/1_Train.py", tiny_mnist)
    at.text_input(key="train.w.seed").set_value(seed).run()
    no_exception(at)
    assert at.button(key="train.start").disabled is not ok
    if not ok:
        assert any("Seed must be a whole number" in e or "Seed must be an integer" in e for e in error_texts(at))


def test_a_run_too_large_is_refused_with_what_to_reduce():
    """Four layers of 2048 for 100 epochs on 50,000 images would hold a worker for hours."""
    from ui import forms

    values = {**forms.preset_values("seed"), "hidden": [2048] * 4, "epochs": 100}
    hidden, config, errors = forms.validate(values, 50_000)
    assert hidden is None and "times larger than one run may be here" in errors["size"]
    assert "fewer epochs" in errors["size"]
    values["epochs"] = 2  # the same network for 2 epochs is fine
    assert forms.validate(values, 50_000)[2] == {}


def test_a_small_learning_rate_is_shown_as_typed(tiny_mnist):
    at = open_page("pages/1_Train.py", tiny_mnist)
    lr = at.number_input(key="train.w.learning_rate")
    assert lr.proto.format == "%g"  # 0.00001 shows as 1e-05, not "0.0000"
    lr.set_value(0.00001).run()
    no_exception(at)
    assert not at.error and not at.button(key="train.start").disabled


def test_train_form_message_sits_under_its_field(tiny_mnist):
    at = open_page("pages/1_Train.py", tiny_mnist)
    at.number_input(key="train.w.learning_rate").set_value(0.0).run()
    # The hyperparameter column holds, in order: learning rate, its message, batch size...
    column = at.columns[1]
    kinds = [type(el).__name__ for el in column]
    labels = [getattr(el, "label", getattr(el, "value", "")) for el in column]
    i = labels.index("Learning rate")
    assert kinds[i + 1] == "Error" and "Learning rate must be" in labels[i + 1]
    assert labels[i + 2] == "Batch size"


def test_best_preset_fills_the_form(tiny_mnist):
    at = open_page("pages/1_Train.py", tiny_mnist)
    at.button_group(key="train.w.preset").set_value("best").run()
    no_exception(at)
    hidden, config = preset("best")
    assert at.segmented_control(key="train.w.layers").value == len(hidden)
    assert at.number_input(key="train.w.hidden.0").value == hidden[0]
    assert at.number_input(key="train.w.learning_rate").value == pytest.approx(config.learning_rate)
    assert at.number_input(key="train.w.momentum").value == pytest.approx(config.momentum)
    assert at.selectbox(key="train.w.lr_schedule").value == config.lr_schedule


def test_augmentation_options_reach_the_runs_config(tiny_mnist, monkeypatch):
    """The "More" section's augmentation values go into the run's config in the store, and the
    running run's (disabled) form shows them."""
    from mnistnet.store import Store
    from ui import jobs, resources

    class Cluster:  # stands in for the training cluster: takes the run, trains nothing
        address = "test://no-cluster"

        def submit(self, run_id):
            pass

    monkeypatch.setattr(resources, "trainer", lambda: type("T", (), {"get": lambda self: Cluster()})())
    owner = visitor()
    at = open_page("pages/1_Train.py", tiny_mnist, owner=owner)
    chosen = {"rotate_degrees": 12.0, "scale": 0.15, "shear_degrees": 10.0, "translate_pixels": 1.5,
              "thickness": 0.5, "elastic_alpha": 8.0, "elastic_sigma": 3.0}
    for field, value in chosen.items():
        at.number_input(key=f"train.w.{field}").set_value(value)
    at.run()
    no_exception(at)
    assert not at.error
    at.button(key="train.start").click().run()
    no_exception(at)
    runs = [r for r in Store().list_runs(owner=owner) if r["origin"] == "app"]
    try:
        assert len(runs) == 1
        assert {f: runs[0]["config"][f] for f in chosen} == chosen
        at.run()  # the page now follows the queued run: its values fill the disabled form
        for field, value in chosen.items():
            box = at.number_input(key=f"train.w.{field}")
            assert box.value == value and box.disabled
    finally:
        store = Store()
        for r in runs:  # the visitor's Stop: cancelled while queued, else stopping until its worker ends it
            store.request_stop(r["id"], owner)
        deadline = time.monotonic() + 60
        while jobs.my_active(owner):
            assert time.monotonic() < deadline, "the test's run did not stop"
            time.sleep(0.1)


# -- Analyze ------------------------------------------------------------------------------

def test_confusion_cell_in_the_url_gives_its_gallery(tiny_mnist, tiny_model):
    pred = tiny_model.predict(tiny_mnist.test.images)
    y = tiny_mnist.test.labels
    cm = np.zeros((10, 10), int)
    np.add.at(cm, (y, pred), 1)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    t, p = np.unravel_index(off.argmax(), off.shape)
    expected = np.flatnonzero((y == t) & (pred == p))
    at = open_page("pages/2_Analyze.py", tiny_mnist, tiny_model, query={"true": str(t), "pred": str(p)})
    no_exception(at)
    heads = [s.value for s in at.subheader]
    assert f"True {t}, predicted {p}: {len(expected):,} test images" in heads
    captions = [c for img in at.get("image") for c in img.captions]
    assert [int(c.split(" ")[0][1:]) for c in captions] == expected.tolist()
    # each image is captioned with its top probabilities, the predicted digit first
    assert all(c.split("\n")[1].startswith(f"{p}:") for c in captions)


def test_clicking_a_pair_selects_it_and_clear_unselects(tiny_mnist, tiny_model):
    at = open_page("pages/2_Analyze.py", tiny_mnist, tiny_model)
    assert "Click a cell" in texts(at)
    pair = next(b for b in at.button if b.key and b.key.startswith("pair."))
    _, t, p = pair.key.split(".")
    pair.click().run()
    no_exception(at)
    assert at.query_params["true"] in (t, [t]) and at.query_params["pred"] in (p, [p])
    assert any(s.value.startswith(f"True {t}, predicted {p}:") for s in at.subheader)
    next(b for b in at.button if b.label == "Clear selection").click().run()
    assert "true" not in at.query_params


def test_bad_selection_in_the_url_is_ignored(tiny_mnist, tiny_model):
    at = open_page("pages/2_Analyze.py", tiny_mnist, tiny_model, query={"true": "12", "pred": "x"})
    no_exception(at)
    assert "Click a cell" in texts(at)


def test_confusion_figure_has_a_clickable_point_on_every_cell():
    cm = np.arange(100).reshape(10, 10)
    fig = figures.confusion_figure(cm, selected=(4, 9))
    scatter = fig.data[1]
    assert scatter.type == "scatter" and len(scatter.x) == 100
    cells = {(int(y), int(x)) for x, y in zip(scatter.x, scatter.y)}
    assert cells == {(t, p) for t in range(10) for p in range(10)}
    assert fig.layout.xaxis.type == fig.layout.yaxis.type == "category"
    (shape,) = fig.layout.shapes
    assert (shape.x0, shape.x1, shape.y0, shape.y1) == (8.5, 9.5, 3.5, 4.5)
    norm = figures.confusion_figure(cm, normalise=True)
    assert norm.data[0].text[1][0] == f"{100 * 10 / cm[1].sum():.1f}"


# -- Draw ---------------------------------------------------------------------------------

def canvas_image(digit28: np.ndarray) -> np.ndarray:
    """A (28, 28) MNIST digit as the canvas would return it: (280, 280, 4) RGBA, white on black."""
    big = np.asarray(Image.fromarray(digit28).resize((280, 280), Image.BILINEAR))
    return np.dstack([big, big, big, np.full_like(big, 255)])


def test_an_injected_drawing_gives_a_prediction(tiny_mnist, tiny_model):
    i = int(np.flatnonzero(tiny_model.predict(tiny_mnist.test.images) == tiny_mnist.test.labels)[0])
    image = canvas_image(tiny_mnist.test.images[i])
    expected = tiny_model.predict_proba(preprocess_drawing(image)[None])[0]
    at = open_page("pages/3_Draw.py", tiny_mnist, tiny_model, session_state={canvas.IMAGE_KEY: image})
    no_exception(at)
    html = "\n".join(m.value for m in at.markdown)
    best = int(expected.argmax())
    assert best == tiny_mnist.test.labels[i]
    assert "id='predicted-digit'" in html and f">{best}</span>" in html
    assert f"{100 * expected[best]:.1f}% confidence" in html
    assert len(at.get("plotly_chart")) == 1
    assert len(at.get("image")) == 1  # the 28x28 view


def test_a_blank_canvas_shows_a_hint_not_a_guess(tiny_mnist, tiny_model):
    blank = np.zeros((280, 280, 4), np.uint8)
    blank[..., 3] = 255
    at = open_page("pages/3_Draw.py", tiny_mnist, tiny_model, session_state={canvas.IMAGE_KEY: blank})
    no_exception(at)
    assert "Draw a digit from 0 to 9" in texts(at)
    assert "predicted-digit" not in "\n".join(m.value for m in at.markdown)


def test_clear_forgets_the_drawing(tiny_mnist, tiny_model):
    image = canvas_image(tiny_mnist.test.images[0])
    at = open_page("pages/3_Draw.py", tiny_mnist, tiny_model, session_state={canvas.IMAGE_KEY: image})
    assert "predicted-digit" in "\n".join(m.value for m in at.markdown)
    next(b for b in at.button if b.label == "Clear").click().run()
    no_exception(at)
    assert canvas.IMAGE_KEY not in at.session_state
    assert at.session_state[canvas.VERSION_KEY] == 1
    assert "Draw a digit from 0 to 9" in texts(at)


# -- figure builders (plain data in, Plotly figures out) ----------------------------------

def _record(epoch, partial=False):
    m = {"loss": 1.0 / epoch, "accuracy": 0.9, "correct": 9000, "total": 10000,
         "per_digit_errors": [epoch * d for d in range(10)]}
    return {"epoch": epoch, "partial": partial, "train": m, "val": m, "test": m}


def test_training_figures_show_the_report_curves():
    epochs = [_record(1), _record(2)]
    batches = [[1000 * i, 2.0 / i] for i in range(1, 101)]  # 100,000 samples = 2 epochs of 50,000
    loss = figures.loss_figure(epochs, batches, 50_000, total_epochs=5)
    assert [t.name for t in loss.data] == ["training batches (smoothed)", "training", "validation", "test"]
    assert loss.data[0].x[-1] == pytest.approx(2.0) and len(loss.data[0].y) == 100
    assert tuple(loss.layout.xaxis.range) == pytest.approx((0, 5.1))
    acc = figures.accuracy_figure(epochs)
    assert list(acc.data[2].y) == [90.0, 90.0]
    errors = figures.digit_errors_figure(epochs, "train")
    assert len(errors.data) == 10 and list(errors.data[3].y) == [3, 6]


def test_a_stopped_epoch_is_drawn_where_it_stopped():
    epochs = [_record(1), _record(2, partial=True)]
    batches = [[50_000, 0.5], [75_000, 0.4]]
    fig = figures.accuracy_figure(epochs, batches, 50_000)
    assert list(fig.data[0].x) == [1.0, 1.5]


def test_smoothing_starts_at_the_first_value():
    assert figures.smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])


def test_probability_figure_highlights_the_guess():
    probs = np.full(10, 0.02)
    probs[7] = 0.82
    fig = figures.probability_figure(probs)
    colours = list(fig.data[0].marker.color)
    assert colours[7] != colours[0] and len(set(colours)) == 2
    assert fig.data[0].y[7] == pytest.approx(82.0)


def test_mnist_that_cannot_be_fetched_gives_a_message_not_a_traceback(monkeypatch):
    from mnistnet import DataError
    from ui import resources

    def offline(report=None):
        report("train-images-idx3-ubyte", 1_000_000, 9_912_422)  # the progress bar moves
        raise DataError("could not get MNIST: put the four files in ~/.cache/mnistnet")

    class EmptyStore:  # a fresh machine: nothing imported yet
        def has_mnist(self):
            return False

        def import_mnist(self, data):
            raise AssertionError("nothing to import")

    monkeypatch.setattr(resources, "load_mnist", offline)
    monkeypatch.setattr(resources, "store", EmptyStore)
    monkeypatch.setattr(resources._data(), "mnist", None)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[identity.OWNER_KEY] = visitor()
    at.switch_page("pages/1_Train.py").run()
    no_exception(at)
    assert any("could not get MNIST" in e.value for e in at.error)
