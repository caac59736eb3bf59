"""The store on a real SQLite file and a real PostgreSQL database (each test runs on both, on an
empty database of its own: conftest's `db_url`): MNIST in and out, recorded runs, faults, schema,
uploads."""

import io
import json
import sqlite3
import threading
import zipfile

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image, ImageFilter

from mnistnet import MLP, TrainConfig, TrainingDiverged, load_mnist
from mnistnet.data import MNIST, Split
from mnistnet.modelfile import model_bytes
from mnistnet.runs import fine_tune_config, measure, mix_user_digits, train_recorded, user_samples
from mnistnet.store import CLI_OWNER, EARLIER, SCHEMA_VERSION, NotAllowed, Store, StoreError
from mnistnet.uploads import UploadError, import_model_upload, import_uploads

VISITOR = "visitor-1"  # the owner of what a test uploads or draws (schema 3: rows have owners)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture
def store(db_url):
    """A new, empty store (no MNIST in it): SQLite, then PostgreSQL."""
    store = Store(db_url)
    yield store
    store.engine.dispose()  # PostgreSQL: give the session server its connections back


def small(data: MNIST, n=1000) -> MNIST:
    return MNIST(Split(data.train.images[:n], data.train.labels[:n]),
                 Split(data.val.images[:300], data.val.labels[:300]),
                 Split(data.test.images[:500], data.test.labels[:500]))


def test_mnist_round_trip(store, mnist):
    assert store.import_mnist(mnist) == 70_000
    assert store.import_mnist(mnist) == 0  # once only
    got = store.load_mnist()
    for name in ("train", "val", "test"):
        assert np.array_equal(getattr(got, name).images, getattr(mnist, name).images)
        assert np.array_equal(getattr(got, name).labels, getattr(mnist, name).labels)
    assert sum(n for (src, _), n in store.sample_counts().items() if src == "mnist") == 70_000


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # WAL is SQLite's journal; PostgreSQL has none
def test_sqlite_file_in_wal_mode(store, db_url):
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_runs_recorded_with_epochs_and_model(store, mnist):
    model = MLP((784, 16, 10), seed=0)
    run = train_recorded(store, model, small(mnist), TrainConfig(epochs=2), "app")
    row = next(r for r in store.list_runs() if r["id"] == run.run_id)
    assert row["status"] == "finished" and row["epochs"] == 2 and row["origin"] == "app"
    assert row["test_correct"] == run.history.epochs[-1]["test"]["correct"]
    assert store.run_epochs(run.run_id) == json.loads(json.dumps(run.history.epochs))
    again = store.load_model(row["model_id"])
    x = mnist.test.images[:50]
    assert np.array_equal(again.predict_proba(x), model.predict_proba(x))
    store.delete_run(run.run_id, CLI_OWNER)
    assert run.run_id not in [r["id"] for r in store.list_runs()] and store.run_epochs(run.run_id) == []


def test_stopped_and_failed_runs(store, mnist):
    stop = train_recorded(store, MLP((784, 8, 10)), small(mnist), TrainConfig(epochs=3), "app",
                          should_stop=lambda: True)
    rows = {r["id"]: r for r in store.list_runs()}
    assert rows[stop.run_id]["status"] == "stopped" and rows[stop.run_id]["model_id"] is not None
    with pytest.raises(TrainingDiverged):
        train_recorded(store, MLP((784, 256, 128, 10)), small(mnist), TrainConfig(learning_rate=10.0), "cli")
    failed = store.list_runs()[0]  # 10 is the largest learning rate TrainConfig accepts
    assert failed["status"] == "failed" and "learning_rate=10.0" in failed["error"]


def test_two_training_threads_at_once(store, mnist):
    results, errors = {}, []

    def job(seed):
        try:
            results[seed] = train_recorded(store, MLP((784, 16, 10), seed=seed), small(mnist, 2000),
                                           TrainConfig(epochs=3, seed=seed), "app")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=job, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = {r["id"]: r for r in store.list_runs()}
    for r in results.values():
        assert rows[r.run_id]["status"] == "finished" and len(store.run_epochs(r.run_id)) == 3


V1_SCHEMA = """
CREATE TABLE meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE samples (id INTEGER PRIMARY KEY, dataset VARCHAR(32) NOT NULL, split VARCHAR(16) NOT NULL,
  label INTEGER NOT NULL, pixels BLOB NOT NULL, source VARCHAR(16) NOT NULL, created_at FLOAT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY, layer_sizes TEXT NOT NULL, config TEXT NOT NULL,
  status VARCHAR(16) NOT NULL, origin VARCHAR(16) NOT NULL, started_at FLOAT NOT NULL, ended_at FLOAT, error TEXT);
CREATE TABLE epochs (run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE, epoch INTEGER,
  test_accuracy FLOAT NOT NULL, metrics TEXT NOT NULL, PRIMARY KEY (run_id, epoch));
CREATE TABLE models (id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,
  name VARCHAR(255) NOT NULL, npz BLOB NOT NULL, sha256 VARCHAR(64) NOT NULL, created_at FLOAT NOT NULL);
CREATE TABLE drawings (id INTEGER PRIMARY KEY, pixels BLOB NOT NULL, prediction INTEGER NOT NULL,
  probabilities TEXT NOT NULL, model_id INTEGER REFERENCES models(id) ON DELETE SET NULL, label INTEGER,
  created_at FLOAT NOT NULL);
CREATE INDEX ix_samples_split ON samples (dataset, split);
INSERT INTO runs (id, layer_sizes, config, status, origin, started_at) VALUES (7, '[784, 8, 10]', '{}',
  'running', 'cli', 0);
"""


def create_v1_store(url: str) -> None:
    """Write V1_SCHEMA into the empty database at `url`, in the types SQLAlchemy gave each
    database at version 1 (on PostgreSQL: SERIAL keys whose sequence has counted the rows)."""
    script = V1_SCHEMA
    engine = sa.create_engine(url)
    if engine.dialect.name == "postgresql":
        script = (script.replace("id INTEGER PRIMARY KEY", "id SERIAL PRIMARY KEY").replace("BLOB", "BYTEA")
                  + "SELECT setval('runs_id_seq', 7);")
    with engine.begin() as c:
        for statement in filter(str.strip, script.split(";")):
            c.execute(sa.text(statement))
    engine.dispose()


def test_older_schema_upgraded_newer_refused(db_url):
    create_v1_store(db_url)
    store = Store(db_url)
    assert store.schema_version() == SCHEMA_VERSION == 5
    run = store.list_runs()[0]
    assert run["id"] == 7 and run["status"] == "interrupted"  # kept, and a v1 'running' row is stale
    assert run["owner"] == EARLIER  # rows from before owners belong to one "earlier" owner
    assert store.list_runs(owner=EARLIER) == [run] and store.list_runs(owner="v-someone") == []
    with pytest.raises(NotAllowed, match="not yours"):
        store.delete_run(7, "v-someone")
    store.engine.dispose()
    engine = sa.create_engine(db_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE meta SET value='99' WHERE key='schema_version'"))
    engine.dispose()
    with pytest.raises(StoreError, match="schema version 99, newer"):
        Store(db_url)


def png(arr, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def digit_png(mnist, i, fmt="PNG") -> bytes:
    return png(255 - np.asarray(Image.fromarray(mnist.test.images[i]).resize((112, 112))), fmt)


def zip_of(entries: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def user_count(store):
    return len(store.load_split("user"))


def test_good_uploads_stored(store, mnist):
    n0 = user_count(store)
    ids = import_uploads(store, [("a.png", digit_png(mnist, 0), 7), ("b.jpg", digit_png(mnist, 1, "JPEG"), 2),
                                 ("set.zip", zip_of({"digits/3/x.png": digit_png(mnist, 18),
                                                     "digits/5/y.png": digit_png(mnist, 8)}), None)], VISITOR)
    assert len(ids) == 4 and user_count(store) == n0 + 4
    got = store.load_split("user", source="upload")
    assert got.labels[-4:].tolist() == [7, 2, 3, 5]


def _bomb() -> bytes:  # 120 MB of zeros that compress to about 120 KB
    return zip_of({f"{d}/z{d}.png": b"\0" * (12 * 1024 * 1024) for d in range(10)})


@pytest.mark.parametrize("make, match", [
    (lambda g: [("notes.png", b"hello, not an image", 1)], "not a readable"),
    (lambda g: [("empty.png", b"", 1)], "empty"),
    (lambda g: [("huge.png", png(np.zeros((10, 4001), np.uint8)), 1)], "over the 4000x4000"),
    (lambda g: [("blank.png", png(np.full((50, 50), 255, np.uint8)), 1)], "blank"),
    (lambda g: [("nolabel.png", g, None)], "give the digit"),
    (lambda g: [("evil.zip", zip_of({"../3/x.png": g}), None)], "unsafe path"),
    (lambda g: [("abs.zip", zip_of({"/etc/3/x.png": g}), None)], "unsafe path"),
    (lambda g: [("bomb.zip", _bomb(), None)], "over the 104,857,600-byte limit"),
    (lambda g: [("flat.zip", zip_of({"x.png": g}), None)], "folder named after its digit"),
    (lambda g: [("empty.zip", b"", None)], "empty"),
    (lambda g: [("ok.png", g, 4), ("bad.png", b"junk", 4)], "bad.png"),  # one bad file: none stored
])
def test_bad_uploads_refused_nothing_stored(store, mnist, make, match):
    files = make(digit_png(mnist, 0))
    n0 = user_count(store)
    with pytest.raises(UploadError, match=match):
        import_uploads(store, files, VISITOR)
    assert user_count(store) == n0


def test_model_uploads(store, tmp_path):
    good = model_bytes(MLP((784, 8, 10)))
    up = import_model_upload(store, good, "mine.npz", VISITOR)
    rid, mid = up.run_id, up.model_id
    assert store.model_blob(mid) == good
    row = next(r for r in store.list_runs() if r["id"] == rid)
    assert row["origin"] == "upload" and row["model_id"] == mid and row["epochs"] == 0
    trained = MLP((784, 8, 10))
    train_recorded(store, trained, small(load_mnist()), TrainConfig(epochs=2), "cli")
    rid2 = import_model_upload(store, model_bytes(trained), "trained.npz", VISITOR).run_id
    assert [e["epoch"] for e in store.run_epochs(rid2)] == [1, 2]  # its history comes along
    n_models = len(store.list_runs())
    buf = io.BytesIO()
    arrays = dict(np.load(io.BytesIO(good)))
    np.savez(buf, **{**arrays, "W0": np.array([object()], dtype=object)})
    wrong = io.BytesIO()
    np.savez(wrong, **{**arrays, "W1": np.zeros((3, 10), np.float32)})
    for data, match in ((buf.getvalue(), "pickled"), (wrong.getvalue(), "W1"), (b"", "empty"), (b"PK\x03", "npz")):
        with pytest.raises(UploadError, match=match):
            import_model_upload(store, data, "bad.npz", VISITOR)
    assert len(store.list_runs()) == n_models  # nothing stored


def test_fine_tune_learns_user_digits_keeps_mnist(store, mnist):
    # "User digits": MNIST test digits drawn thicker and shifted, labelled by the user.
    model = MLP((784, 64, 10), seed=0)
    train_recorded(store, model, mnist, TrainConfig(epochs=1), "cli")
    rng = np.random.default_rng(0)
    idx = rng.choice(10_000, 40, replace=False)
    # thicker: a 3x3 maximum filter (grey dilation); shifted 3 px to the right
    imgs = np.stack([np.roll(np.asarray(Image.fromarray(mnist.test.images[i]).filter(ImageFilter.MaxFilter(3))),
                             3, axis=1) for i in idx])
    assert imgs.astype(int).sum() > 1.3 * mnist.test.images[idx].astype(int).sum()  # really thicker
    store.add_samples(imgs, mnist.test.labels[idx], "drawing", VISITOR)
    user = user_samples(store, VISITOR)
    # Fine-tuning as a worker does it (mnistnet.tasks.run_task), in this process.
    user_before, test_before = measure(model, user), measure(model, mnist.test)
    assert user_before["correct"] <= 30, user_before  # the digits are hard for the model as it is
    run = train_recorded(store, model, mix_user_digits(mnist, user), fine_tune_config(), "finetune", VISITOR)
    user_after = measure(model, user)
    # it learns them: at least 36 of the 40, and 10 more than before
    assert user_after["correct"] >= max(36, user_before["correct"] + 10), (user_before, user_after)
    assert measure(model, mnist.test)["accuracy"] >= test_before["accuracy"] - 0.003
    assert next(r for r in store.list_runs() if r["id"] == run.run_id)["origin"] == "finetune"


def _finished(store, owner, acc):
    record = {"epoch": 1, "partial": False, "seconds": 1.0, "train_seconds": 1.0, "learning_rate": 0.1,
              **{s: {"loss": 0.3, "accuracy": acc, "correct": int(acc * 10000), "total": 10000,
                     "per_digit_errors": [0] * 10} for s in ("train", "val", "test")}}
    run_id = store.submit_run(owner, (784, 8, 10), TrainConfig().to_dict(), "app", spec={"make_current": True})
    store.claim_run(run_id, "w")
    store.add_epoch(run_id, record, MLP((784, 8, 10), seed=run_id))
    store.end_run(run_id, "finished")
    return run_id


def test_a_far_worse_run_does_not_replace_the_current_model(db_url):
    """Finding 9: a run on one training image (8.9%) silently replaced a 97.6% model."""
    store = Store(db_url)
    good = _finished(store, "alice", 0.976)
    assert "now your current model" in store.adopt(good)
    assert store.current("alice")["model_id"] == store.run(good)["model_id"]
    bad = _finished(store, "alice", 0.089)
    note = store.adopt(bad)
    assert note.startswith("Your current model (97.60%) stays current: this run reached only 8.90%")
    assert store.current("alice")["model_id"] == store.run(good)["model_id"]
    assert store.run(bad)["spec"]["note"] == note  # the Train page shows it under the run
    close = _finished(store, "alice", 0.95)  # a little worse: the visitor's newest run becomes current
    store.adopt(close)
    assert store.current("alice")["model_id"] == store.run(close)["model_id"]
