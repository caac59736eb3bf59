"""AppTest tests of the store's pages (Runs, Data) and the Draw page's loop, on the test
session's own SQLite file (MNISTNET_DB_URL, set by conftest.py), small injected data and
visitors set by the test: whose runs, models and digits are whose."""

import json
import os
import re
import time

import hostile_files as H
import numpy as np
import pytest
from test_app import canvas_image, no_exception, open_page, texts, visitor
from test_hostile import FLAT_REFUSED

from mnistnet import MLP, TrainConfig, preprocess_drawing, uploads
from mnistnet.runs import train_recorded
from mnistnet.store import NotAllowed, Store
from ui import canvas, runfigures
from ui.plain import html, md

PAGES = ["pages/4_Runs.py", "pages/5_Data.py"]


@pytest.fixture(scope="module")
def store():
    assert "mnistnet-test-db-" in os.environ["MNISTNET_DB_URL"]  # never the user's own store
    return Store()


@pytest.fixture(scope="module", autouse=True)
def shared_model_untouched(tiny_model):
    """The injected model stands in for every visitor without a model of their own: after every
    page of this module has run, its parameters are exactly what they were."""
    before = tiny_model.copy_parameters()
    yield
    changed = [i for i, (a, b) in enumerate(zip(tiny_model.parameters(), before)) if not np.array_equal(a, b)]
    assert not changed, f"a page changed the shared model's parameters {changed}"


@pytest.fixture(scope="module")
def alice():
    return visitor()


@pytest.fixture(scope="module")
def two_runs(store, tiny_mnist, alice):
    """Two finished runs of Alice's."""
    return [train_recorded(store, MLP((784, 16, 10), seed=seed), tiny_mnist, TrainConfig(epochs=2, seed=seed),
                           "app", owner=alice) for seed in (1, 2)]


def table(at, key):
    return next(d.value for d in at.dataframe if d.key == key) if any(d.key == key for d in at.dataframe) else None


@pytest.mark.parametrize("page", PAGES)
def test_store_pages_run_without_exception(page, tiny_mnist, tiny_model, two_runs):
    no_exception(open_page(page, tiny_mnist, tiny_model))


def test_runs_are_mine_or_everyones(tiny_mnist, tiny_model, two_runs, alice):
    at = open_page("pages/4_Runs.py", tiny_mnist, tiny_model, owner=alice)
    no_exception(at)
    mine = table(at, "runs.mine")
    for r in two_runs:
        row = mine[mine["run"] == r.run_id].iloc[0]
        test = r.history.epochs[-1]["test"]
        assert row["status"] == "finished" and row["epochs"] == 2
        assert f"({test['correct']:,} / {test['total']:,})" in row["test accuracy"]
    bob = open_page("pages/4_Runs.py", tiny_mnist, tiny_model)  # another visitor
    assert table(bob, "runs.mine") is None and "No runs of yours yet" in texts(bob)
    assert set(r.run_id for r in two_runs) <= set(table(bob, "runs.all")["run"])


def test_a_run_link_opens_it_read_only_and_takes_nothing(tiny_mnist, tiny_model, two_runs, store, alice):
    run = two_runs[1]
    bob = visitor()
    at = open_page("pages/4_Runs.py", tiny_mnist, tiny_model, query={"run": str(run.run_id)}, owner=bob)
    no_exception(at)
    assert len(at.get("plotly_chart")) == 3  # loss, accuracy, per-digit errors
    assert "read-only" in texts(at)
    assert not [b for b in at.button if b.key in ("runs.delete", "runs.stop", "runs.rename")]
    assert store.current(bob) is None  # opening a link changes nobody's model
    shared, owner_current = store.model_blob(run.model_id), store.current(alice)
    at.button(key="runs.use").click().run()
    no_exception(at)
    now = store.current(bob)
    assert now is not None and now["model_id"] != run.model_id  # a copy of Bob's own
    x = tiny_mnist.test.images[:20]
    assert np.array_equal(store.load_model(now["model_id"]).predict_proba(x),
                          store.load_model(run.model_id).predict_proba(x))
    # the run's model is left exactly as it was, still the run's, and its owner's choice stands
    assert store.model_blob(run.model_id) == shared and store.run(run.run_id)["model_id"] == run.model_id
    assert store.current(alice) == owner_current
    # the copy is Bob's current model on every page, in any new session (a reload, a new tab)
    again = open_page("pages/2_Analyze.py", tiny_mnist, tiny_model, owner=bob)
    no_exception(again)
    assert md(f"run #{run.run_id}") in texts(open_page("app.py", tiny_mnist, tiny_model, owner=bob))  # text, escaped


def test_only_the_owner_deletes_and_never_a_running_run(tiny_mnist, tiny_model, store, alice):
    run_id = store.submit_run(alice, (784, 8, 10), TrainConfig().to_dict(), "app")
    with pytest.raises(NotAllowed, match="not yours"):
        store.delete_run(run_id, visitor())
    with pytest.raises(NotAllowed, match="stop it first"):
        store.delete_run(run_id, alice)
    with pytest.raises(NotAllowed, match="not yours"):
        store.request_stop(run_id, visitor())
    assert store.request_stop(run_id, alice) == "cancelled"  # it was only queued
    store.delete_run(run_id, alice)
    assert store.run(run_id) is None


def test_delete_from_the_runs_page(tiny_mnist, tiny_model, store, alice):
    run = train_recorded(store, MLP((784, 8, 10), seed=5), tiny_mnist, TrainConfig(epochs=1), "app", owner=alice)
    at = open_page("pages/4_Runs.py", tiny_mnist, tiny_model, query={"run": str(run.run_id)}, owner=alice)
    no_exception(at)
    at.button(key="runs.delete").click().run()
    no_exception(at)
    assert store.run(run.run_id) is None and f"Run #{run.run_id} was deleted" in texts(at)


@pytest.mark.parametrize("bad", ["999999", "abc"])
def test_a_bad_run_link_says_so_or_is_ignored(tiny_mnist, tiny_model, bad):
    at = open_page("pages/4_Runs.py", tiny_mnist, tiny_model, query={"run": bad})
    no_exception(at)
    assert bad not in "\n".join(e.value for e in at.error) or "There is no run #999999" in texts(at)


def test_data_page_counts_only_my_digits(tiny_mnist, tiny_model, store, alice):
    store.add_samples(tiny_mnist.test.images[:3], [7, 2, 1], "upload", owner=alice)
    at = open_page("pages/5_Data.py", tiny_mnist, tiny_model, owner=alice)
    no_exception(at)
    counts = at.dataframe[0].value.set_index("source")
    assert counts.loc["upload (yours)", "total"] >= 3 and counts.loc["upload (yours)", "7"] >= 1
    at.selectbox(key="data.source").set_value("upload")
    at.selectbox(key="data.digit").set_value(7)
    at.run()
    no_exception(at)
    assert len(at.get("image")) >= 1
    fresh = open_page("pages/5_Data.py", tiny_mnist, tiny_model)
    assert fresh.dataframe[0].value.set_index("source").loc["upload (yours)", "total"] == 0


def test_keep_a_drawing_once_and_it_is_only_mine(tiny_mnist, tiny_model, store):
    me = visitor()
    image = canvas_image(tiny_mnist.test.images[0])
    at = open_page("pages/3_Draw.py", tiny_mnist, tiny_model, session_state={canvas.IMAGE_KEY: image}, owner=me)
    no_exception(at)
    box = next(s for s in at.selectbox if s.label == "Wrong? It is a ...")
    box.set_value(3)
    at.button(key="draw.correct").click().run()
    no_exception(at)
    kept = store.load_split("user", source="drawing", owner=me)
    assert len(kept) == 1 and kept.labels[-1] == 3
    assert at.button(key="draw.correct").disabled and "Kept as a 3" in at.button(key="draw.correct").label
    assert "You have 1 labelled digits of your own" in texts(at)
    # another visitor has none of them
    other = open_page("pages/3_Draw.py", tiny_mnist, tiny_model, session_state={canvas.IMAGE_KEY: image})
    assert "You have" not in texts(other) and "Keep or correct a few drawings" in texts(other)


def reading(model, image) -> int:
    return int(model.predict_proba(preprocess_drawing(image)[None])[0].argmax())


def test_the_label_box_follows_the_reading_of_each_new_drawing(tiny_mnist, tiny_model):
    """Finding 6: after a second stroke changes the reading, the box shows the new reading."""
    images = [canvas_image(tiny_mnist.test.images[k]) for k in range(40)]
    first = reading(tiny_model, images[0])
    second = next(im for im in images if reading(tiny_model, im) != first)
    at = open_page("pages/3_Draw.py", tiny_mnist, tiny_model, session_state={canvas.IMAGE_KEY: images[0]})
    assert next(s for s in at.selectbox if s.label == "Wrong? It is a ...").value == first
    at.session_state[canvas.IMAGE_KEY] = second  # the drawing changes
    at.run()
    no_exception(at)
    assert next(s for s in at.selectbox if s.label == "Wrong? It is a ...").value == reading(tiny_model, second)


# -- visitor-written text is shown as written ------------------------------------------------
EVIL = "[click](http://evil.example) ![x](http://evil.example/x.png) <b>bold</b> **strong**"


def _markdown_bodies(at) -> list[str]:
    """Every Markdown text the run put on the page (bodies and widget labels)."""
    out = []
    for kind in ("markdown", "caption", "info", "error", "success", "subheader", "title", "warning"):
        out += [str(getattr(el, "value", "")) for el in at.get(kind)]
    return out + [w.label for w in (*at.button, *at.text_input, *at.selectbox) if w.label]


def test_a_run_name_is_shown_as_written_never_as_markdown_or_html(tiny_mnist, tiny_model, store, alice):
    run = train_recorded(store, MLP((784, 8, 10), seed=9), tiny_mnist, TrainConfig(epochs=1), "app", owner=alice)
    store.rename_run(run.run_id, alice, EVIL)  # 83 characters: the Rename box takes 80, the store 255
    at = open_page("pages/4_Runs.py", tiny_mnist, tiny_model, query={"run": str(run.run_id)}, owner=alice)
    no_exception(at)
    # Markdown: the name escaped wherever it appears, and never raw
    assert [s.value for s in at.subheader if s.value.startswith("Run #")] == [f"Run #{run.run_id} “{md(EVIL)}”"]
    bodies = _markdown_bodies(at)
    assert not [b for b in bodies if "](http" in b or "<b>" in b or "**strong" in b], bodies
    # Plotly: every legend entry holds the name as HTML-escaped text
    names = [t["name"] for c in at.get("plotly_chart") for t in json.loads(c.proto.spec)["data"]]
    assert len(names) == 2 + 10 and all(html(EVIL) in n for n in names), names
    assert not [n for n in names if "<" in n or ">" in n]
    # reading the run's model as one's current model: its source (with the name) stays text
    at.button(key="runs.use").click().run()
    home = open_page("app.py", tiny_mnist, tiny_model, owner=alice)
    source = next(c.value for c in home.caption if c.value.startswith("Where it came from"))
    assert md(EVIL) in source and "](http" not in source


def test_the_run_figures_escape_their_labels():
    epochs = [{"epoch": 1, "test": {"loss": 0.5, "accuracy": 0.9, "per_digit_errors": list(range(10))}}]
    figs = [runfigures.overlay_figure([(EVIL, epochs)], "test", "loss", "Test loss", "loss"),
            runfigures.digit_errors_overlay([(EVIL, epochs)])]
    names = [t.name for f in figs for t in f.data]
    assert names[0] == "[click](http://evil.example) ![x](http://evil.example/x.png) &lt;b&gt;bold&lt;/b&gt; **strong**"
    assert all("&lt;b&gt;bold&lt;/b&gt;" in n and "<" not in n for n in names)


def test_plain_text_escapes():
    j = "\u2060"  # a word joiner: invisible, it breaks the autolinks and emoji found after parsing
    assert md(EVIL) == (rf"\[click\]\(http\:{j}\/\/evil\.example\) \!\[x\]\(http\:{j}\/\/evil\.example\/x\.png\) "
                        r"\<b\>bold\<\/b\> \*\*strong\*\*")
    assert md("a\nb\r\n# c") == "a b \\# c"  # no new block (a heading, a list)
    assert md(":red[x] $x$ :material/home:") == f"\\:{j}red\\[x\\] \\$x\\$ \\:{j}material\\/home\\:{j}"
    assert md("bob@evil.example www.evil.example :smile:") == (
        f"bob{j}\\@evil\\.example www{j}\\.evil\\.example \\:{j}smile\\:{j}")
    assert re.sub(r"\\(.)", r"\1", md(EVIL)).replace(j, "") == EVIL  # shown: the text itself
    assert html('<a href="x">&</a>') == "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"


# -- the Data page's upload: decoded once, bounded in pixels -------------------------------------
def test_an_upload_is_decoded_once_and_a_flat_zip_refused_at_once(tiny_mnist, tiny_model, store, monkeypatch):
    decoded = []  # the size of every image whose pixels were decoded
    real = uploads._pixels
    monkeypatch.setattr(uploads, "_pixels", lambda im: decoded.append(im.size) or real(im))
    me = visitor()
    at = open_page("pages/5_Data.py", tiny_mnist, tiny_model, owner=me)
    zipped = H.zip_of({"4/a.png": H.digit_png(4), "7/b.png": H.digit_png(7)})
    at.file_uploader(key="data.files.0").set_value([("three.png", H.digit_png(3), "image/png"),
                                                     ("digits.zip", zipped, "application/zip")]).run()
    no_exception(at)
    assert len(decoded) == 3 and not at.error
    assert f"{md('digits.zip')}: 2 digits, labelled by their folders" in texts(at)
    next(s for s in at.selectbox if s.key.startswith("data.label.")).set_value(3).run()  # nothing decoded again
    at.button(key="data.add").click().run()  # stores what was prepared: nothing decoded again
    no_exception(at)
    assert len(decoded) == 3 and "Stored 3 digit(s)" in texts(at)
    assert store.load_split("user", source="upload", owner=me).labels.tolist() == [3, 4, 7]
    # 987 flat 4000 x 4000 PNGs in 20 MB: refused from their headers, before any is decoded
    flat = H.flat_png_zip()
    at.file_uploader(key="data.files.1").set_value(("flat.zip", flat, "application/zip"))
    idle, t = H.reset_peak_rss(), time.perf_counter()
    at.run()
    seconds, grown_mb = time.perf_counter() - t, (H.peak_rss_kb() - idle) / 1024
    no_exception(at)
    assert [e.value for e in at.error] == [md(FLAT_REFUSED)] and len(decoded) == 3
    # the page's whole rerun; measured: 0.06 s, 20 MB (the page's one copy of the 20 MB upload)
    assert seconds < 2 and grown_mb < 100, (seconds, grown_mb)
    assert not [b for b in at.button if b.key == "data.add"]
