"""AppTest tests of the store's pages (Runs, Data) and the Draw page's loop, on the test
session's own SQLite file (MNISTNET_DB_URL, set by conftest.py) and small injected data."""

import os

import numpy as np
import pytest
from test_app import canvas_image, no_exception, open_page, texts

from mnistnet import MLP, TrainConfig
from mnistnet.runs import train_recorded
from mnistnet.store import Store
from ui import canvas, mydigits, state

PAGES = ["pages/4_Runs.py", "pages/5_Data.py"]


@pytest.fixture(scope="module")
def store():
    assert "mnistnet-test-db-" in os.environ["MNISTNET_DB_URL"]  # never the user's own store
    return Store()


@pytest.fixture(scope="module")
def two_runs(store, tiny_mnist):
    out = []
    for seed in (1, 2):
        out.append(train_recorded(store, MLP((784, 16, 10), seed=seed), tiny_mnist,
                                  TrainConfig(epochs=2, seed=seed), "app"))
    return out


@pytest.mark.parametrize("page", PAGES)
def test_store_pages_run_without_exception(page, tiny_mnist, tiny_model, two_runs):
    no_exception(open_page(page, tiny_mnist, tiny_model))


def test_runs_table_lists_runs(tiny_mnist, tiny_model, two_runs):
    at = open_page("pages/4_Runs.py", tiny_mnist, tiny_model)
    no_exception(at)
    df = at.dataframe[0].value
    for r in two_runs:
        row = df[df["run"] == r.run_id].iloc[0]
        test = r.history.epochs[-1]["test"]
        assert row["status"] == "finished" and row["epochs"] == 2
        assert f"({test['correct']:,} / {test['total']:,})" in row["test accuracy"]


def test_a_run_link_opens_its_curves_and_model(tiny_mnist, tiny_model, two_runs, store):
    run = two_runs[1]
    at = open_page("pages/4_Runs.py", tiny_mnist, tiny_model, query={"run": str(run.run_id)})
    no_exception(at)
    assert len(at.get("plotly_chart")) == 3  # loss, accuracy, per-digit errors
    entry = at.session_state[state.MODEL_KEY]
    assert entry.model_id == run.model_id and f"run #{run.run_id}" in entry.source
    x = tiny_mnist.test.images[:20]
    assert np.array_equal(entry.model.predict_proba(x), store.load_model(run.model_id).predict_proba(x))
    # the same link on another page: Analyze measures that run's model
    at2 = open_page("pages/2_Analyze.py", tiny_mnist, tiny_model, query={"run": str(run.run_id)})
    no_exception(at2)
    assert at2.session_state[state.MODEL_KEY].model_id == run.model_id


@pytest.mark.parametrize("bad", ["999999", "abc"])
def test_a_bad_run_link_says_so(tiny_mnist, tiny_model, bad):
    at = open_page("pages/4_Runs.py", tiny_mnist, tiny_model, query={"run": bad})
    no_exception(at)
    assert bad in "\n".join(e.value for e in at.error)


def test_data_page_counts_and_browse(tiny_mnist, tiny_model, store):
    store.add_samples(tiny_mnist.test.images[:3], [7, 2, 1], "upload")
    at = open_page("pages/5_Data.py", tiny_mnist, tiny_model)
    no_exception(at)
    counts = at.dataframe[0].value.set_index("source")
    assert counts.loc["upload", "total"] >= 3 and counts.loc["upload", "7"] >= 1
    at.selectbox(key="data.source").set_value("upload")
    at.selectbox(key="data.digit").set_value(7)
    at.run()
    no_exception(at)
    assert len(at.get("image")) >= 1


def test_correct_it_then_fine_tune(tiny_mnist, tiny_model, store):
    n_drawings = len(store.load_split("user", source="drawing"))
    image = canvas_image(tiny_mnist.test.images[0])
    at = open_page("pages/3_Draw.py", tiny_mnist, tiny_model, session={canvas.IMAGE_KEY: image})
    no_exception(at)
    at.selectbox(key="draw.label").set_value(3)
    at.button(key="draw.correct").click().run()
    no_exception(at)
    kept = store.load_split("user", source="drawing")
    assert len(kept) == n_drawings + 1 and kept.labels[-1] == 3
    at.button(key="draw.finetune.go").click().run()
    no_exception(at)
    result = at.session_state[mydigits.RESULT_KEY]
    assert result.user_after["total"] == len(store.load_split("user"))
    assert "Your digits" in texts(at) and "MNIST test" in texts(at)
    assert "fine-tuned" in at.session_state[state.MODEL_KEY].source
    assert at.session_state[state.MODEL_KEY].model is not tiny_model  # the shared model is untouched
