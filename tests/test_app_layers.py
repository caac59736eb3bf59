"""The Train form with networks built from layers and a second data set (AppTest): the CNN
preset fills the line, a bad line is refused in the form's words, and the line and the data set
reach the run the store records; the running run's disabled form shows them."""

import time

import numpy as np
import pytest
from test_app import error_texts, no_exception, open_page, texts, visitor

from mnistnet import preset
from mnistnet.net import plan
from mnistnet.store import Store


@pytest.fixture
def no_cluster(monkeypatch):
    """The training cluster stands in: it takes the run and trains nothing."""
    from ui import resources

    class Cluster:
        address = "test://no-cluster"

        def submit(self, run_id):
            pass

    monkeypatch.setattr(resources, "trainer", lambda: type("T", (), {"get": lambda self: Cluster()})())


def _stop_all(owner):
    from ui import jobs

    store = Store()
    for r in store.list_runs(owner=owner):
        if r["status"] in ("queued", "running"):
            store.request_stop(r["id"], owner)
    deadline = time.monotonic() + 60
    while jobs.my_active(owner):
        assert time.monotonic() < deadline, "the test's run did not stop"
        time.sleep(0.1)


def test_the_cnn_preset_fills_the_line_and_its_run_records_it(tiny_mnist, no_cluster):
    line, config = preset("cnn")
    owner = visitor()
    at = open_page("pages/1_Train.py", tiny_mnist, owner=owner)
    at.button_group(key="train.w.preset").set_value("cnn").run()
    no_exception(at)
    assert at.text_input(key="train.w.net").value == line
    assert at.number_input(key="train.w.hidden.0").disabled  # the line decides
    assert at.number_input(key="train.w.epochs").value == config.epochs
    assert any("% (" in c.value and "on MNIST" in c.value for c in at.caption)
    at.button_group(key="train.w.preset").set_value("seed").run()  # a dense preset clears the line
    assert at.text_input(key="train.w.net").value == "" and not at.number_input(key="train.w.hidden.0").disabled
    at.button_group(key="train.w.preset").set_value("cnn").run()
    at.number_input(key="train.w.epochs").set_value(1)
    at.number_input(key="train.w.train_size").set_value(2000).run()
    assert not at.error and not at.button(key="train.start").disabled
    at.button(key="train.start").click().run()
    no_exception(at)
    try:
        [run] = [r for r in Store().list_runs(owner=owner) if r["origin"] == "app"]
        assert run["spec"]["net"] == line and run["spec"]["make_current"]
        assert tuple(run["layer_sizes"]) == plan(line).layer_sizes == (784, 512, 128, 10)
        assert run["config"]["dataset"] == "mnist"
        at.run()  # the page follows the queued run: the disabled form shows its line
        box = at.text_input(key="train.w.net")
        assert box.value == line and box.disabled
        assert any(line in c.value for c in at.caption)
    finally:
        _stop_all(owner)


@pytest.mark.parametrize("line, message", [
    ("conv 8x5 - spline 3", "Network: 'spline 3' is not a layer: expected 'conv FxK', 'pool', 'dense N'"),
    ("conv 999x5 - pool", "Network: 'conv 999x5': filters must be 1 to 128, got 999"),
    ("dense 64 - conv 8x3", "Network: conv and pool layers must come before the first dense layer"),
    ("conv 128x3 same - conv 128x3 same", "values per image in training, over the limit"),
])
def test_a_bad_line_is_refused_in_the_forms_words(line, message, tiny_mnist):
    at = open_page("pages/1_Train.py", tiny_mnist)
    at.text_input(key="train.w.net").set_value(line).run()
    no_exception(at)
    assert any(message in e for e in error_texts(at)), error_texts(at)
    assert at.button(key="train.start").disabled


def test_a_run_too_large_for_its_convolutions_is_refused():
    """Multiply-adds per image count for a line as weights do for an MLP."""
    from ui import forms

    values = {**forms.preset_values("cnn"), "net": "conv 32x5 same - conv 64x5 same - pool - dense 256",
              "epochs": 100}
    arch, config, errors = forms.validate(values, 50_000)
    assert arch is None and "multiply-adds per image" in errors["size"]
    values["epochs"] = 1
    arch, config, errors = forms.validate(values, 50_000)
    assert errors == {} and arch == "conv 32x5 same - conv 64x5 same - pool - dense 256"


def test_fashion_mnist_reaches_the_runs_config(tiny_mnist, no_cluster):
    owner = visitor()
    at = open_page("pages/1_Train.py", tiny_mnist, owner=owner)
    assert at.selectbox(key="train.w.dataset").value == "mnist"
    at.selectbox(key="train.w.dataset").set_value("fashion")
    at.number_input(key="train.w.train_size").set_value(2000).run()
    no_exception(at)
    at.button(key="train.start").click().run()
    no_exception(at)
    try:
        [run] = [r for r in Store().list_runs(owner=owner) if r["origin"] == "app"]
        assert run["config"]["dataset"] == "fashion" and "net" not in run["spec"]
        at.run()
        assert any("on Fashion-MNIST" in c.value for c in at.caption)
    finally:
        _stop_all(owner)


def test_a_preset_follows_the_data_set_until_the_visitor_changes_it(tiny_mnist):
    """CNN on MNIST turns digits; switched to Fashion-MNIST it loads the clothes recipe (mirrored,
    not turned) and says its Fashion figures; once a value is edited, a switch keeps the form."""
    from mnistnet.presets import preset_summary

    at = open_page("pages/1_Train.py", tiny_mnist)
    at.button_group(key="train.w.preset").set_value("cnn").run()
    digits, clothes = preset("cnn")[1], preset("cnn", "fashion")[1]
    assert at.number_input(key="train.w.rotate_degrees").value == digits.rotate_degrees > 0
    assert not at.checkbox(key="train.w.flip").value
    at.selectbox(key="train.w.dataset").set_value("fashion").run()
    no_exception(at)
    assert at.checkbox(key="train.w.flip").value and at.number_input(key="train.w.rotate_degrees").value == 0
    assert at.number_input(key="train.w.epochs").value == clothes.epochs
    assert at.number_input(key="train.w.learning_rate").value == clothes.learning_rate
    assert preset_summary("cnn", "fashion") in [c.value for c in at.caption]
    at.selectbox(key="train.w.dataset").set_value("mnist").run()  # and back
    assert at.number_input(key="train.w.rotate_degrees").value == digits.rotate_degrees
    assert not at.checkbox(key="train.w.flip").value
    at.number_input(key="train.w.epochs").set_value(3).run()  # the visitor's own value
    at.selectbox(key="train.w.dataset").set_value("fashion").run()
    assert at.number_input(key="train.w.epochs").value == 3
    assert at.number_input(key="train.w.rotate_degrees").value == digits.rotate_degrees
    assert not at.error and not at.button(key="train.start").disabled


def test_mirroring_reaches_the_runs_config(tiny_mnist, no_cluster):
    owner = visitor()
    at = open_page("pages/1_Train.py", tiny_mnist, owner=owner)
    at.checkbox(key="train.w.flip").check()
    at.number_input(key="train.w.train_size").set_value(2000).run()
    at.button(key="train.start").click().run()
    no_exception(at)
    try:
        [run] = [r for r in Store().list_runs(owner=owner) if r["origin"] == "app"]
        assert run["config"]["flip"] is True
        at.run()  # the running run's form shows it, disabled
        assert at.checkbox(key="train.w.flip").value and at.checkbox(key="train.w.flip").disabled
    finally:
        _stop_all(owner)


@pytest.fixture(scope="module")
def tiny_fashion():
    """Fashion-MNIST cut to 3,000 / 500 / 1,000 images, and a small CNN trained on it."""
    from mnistnet import TrainConfig, train
    from mnistnet.data import MNIST, Split, load_fashion_mnist
    from mnistnet.net import Net

    d = load_fashion_mnist()
    cut = lambda s, n: Split(s.images[:n], s.labels[:n])  # noqa: E731
    data = MNIST(cut(d.train, 3000), cut(d.val, 500), cut(d.test, 1000))
    model = Net("conv 4x5 - pool - dense 32", seed=0)
    train(model, data, TrainConfig(epochs=2, learning_rate=0.1, dataset="fashion"))
    return data, model


def test_analyze_names_the_classes_of_a_fashion_model(tiny_fashion):
    data, model = tiny_fashion
    at = open_page("pages/2_Analyze.py", data, model)
    no_exception(at)
    page = texts(at)
    assert "On the 1,000 test images of Fashion-MNIST, which this model reads." in page
    assert "Per class" in page
    pairs = [b.label for b in at.button if b.key and b.key.startswith("pair.")]
    assert pairs and all(" → " in p and not p.split(" → ")[0].isdigit() for p in pairs)
    t, p = (int(v) for v in [b for b in at.button if b.key and b.key.startswith("pair.")][0].key.split(".")[1:])
    at.button(key=f"pair.{t}.{p}").click().run()
    no_exception(at)
    from mnistnet.data import FASHION_CLASSES

    heads = [s.value for s in at.subheader]
    assert any(h.startswith(f"True {FASHION_CLASSES[t]}, predicted {FASHION_CLASSES[p]}:") for h in heads), heads
    [table] = at.dataframe
    assert list(table.value["class"]) == list(FASHION_CLASSES)


def test_draw_says_which_data_set_and_names_the_answer(tiny_fashion):
    """A trouser from the test set drawn on the pad: the answer is a class name, with the
    data set said and no keeping or fine-tuning (drawings are digits)."""
    from test_app import canvas_image

    from mnistnet import preprocess_drawing
    from mnistnet.data import FASHION_CLASSES
    from ui import canvas

    data, model = tiny_fashion
    i = int(np.flatnonzero((model.predict(data.test.images) == data.test.labels) & (data.test.labels == 1))[0])
    image = canvas_image(data.test.images[i])
    expected = model.predict_proba(preprocess_drawing(image)[None])[0]
    at = open_page("pages/3_Draw.py", data, model, session_state={canvas.IMAGE_KEY: image})
    no_exception(at)
    assert any("This model reads Fashion-MNIST" in i.value and "Ankle boot" in i.value for i in at.info)
    html = "\n".join(m.value for m in at.markdown)
    best = int(expected.argmax())
    assert "id='predicted-class'" in html and f">{FASHION_CLASSES[best]}</span>" in html
    assert "id='predicted-digit'" not in html
    assert not at.selectbox and not [b for b in at.button if b.key == "draw.correct"]  # nothing kept as a digit
    assert "Fine-tune on my digits" not in texts(at)


def test_an_uploaded_fashion_model_is_measured_on_fashion_mnist(tiny_fashion, tmp_path):
    """import_model_upload asks for the test images of the data set the file's history names."""
    from mnistnet.metrics import evaluate_scaled
    from mnistnet.modelfile import model_bytes
    from mnistnet.uploads import import_model_upload

    data, model = tiny_fashion
    store = Store(f"sqlite:///{tmp_path}/up.sqlite3")
    asked = []

    def test_of(name):
        asked.append(name)
        return data.test

    up = import_model_upload(store, model_bytes(model), "shoes.npz", "v-up", test_of)
    want = evaluate_scaled(model, model.scale_inputs(data.test.images), data.test.labels)
    assert asked == ["fashion"] and up.dataset == "fashion"
    assert up.measured_test["correct"] == want["correct"] > 500  # well above chance on 1,000 images
    row = next(r for r in store.list_runs() if r["id"] == up.run_id)
    assert "on the Fashion-MNIST test set, measured on upload" in row["error"]  # the run's note
