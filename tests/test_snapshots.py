"""Weight snapshots through training: the format and its checks, the keeping policy, the
training loop's moments, the store (SQLite and PostgreSQL: conftest's `db_url`), model files,
the CLI and the session's getter. Training runs on real MNIST (conftest's `tiny_mnist`)."""

import io
import json
import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from mnistnet import MLP, TrainConfig, load_model, train
from mnistnet.modelfile import MAX_FILE_BYTES, model_bytes
from mnistnet.network import MAX_PARAMETERS, parameter_count
from mnistnet.runs import train_recorded
from mnistnet.snapshots import (
    MAGIC,
    MAX_SNAPSHOTS,
    Snapshot,
    capacity,
    decode,
    encode,
    retained,
    take,
    thin,
)
from mnistnet.store import CLI_OWNER, SCHEMA_VERSION, Store
from mnistnet.uploads import import_model_upload

SIZES = (784, 16, 10)
N = 784 * 16 + 16 + 16 * 10 + 10  # parameters of SIZES, counted by hand


def f16(a) -> np.ndarray:
    """What float16 storage makes of `a`, by numpy's own conversion (the reference)."""
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def raw(epochs, sizes=SIZES, payload=None, **header) -> bytes:
    """Snapshots bytes built by hand from the documented format, not by encode()."""
    h = {"version": 1, "layer_sizes": list(sizes), "epochs": list(epochs), "dtype": "<f2", **header}
    body = json.dumps(h).encode()
    if payload is None:
        payload = np.zeros(len(epochs) * parameter_count(sizes), "<f2").tobytes()
    return MAGIC + struct.pack("<I", len(body)) + body + payload


def same(snaps, reference) -> bool:
    """Snapshots equal to `reference` (Snapshots, or models) after float16 storage."""
    return len(snaps) == len(reference) and all(
        np.array_equal(a, f16(b)) for s, r in zip(snaps, reference)
        for a, b in zip(s.weights + s.biases, r.weights + r.biases))


@pytest.fixture(scope="module")
def trained(tiny_mnist):
    """784-16-10 after one epoch on real MNIST, and a snapshot of it before and after."""
    model = MLP(SIZES, seed=3)
    first = take(model, 0.0)
    train(model, tiny_mnist, TrainConfig(epochs=1, learning_rate=0.1))
    return model, [first, take(model, 1.0)]


# -- take, encode, decode --------------------------------------------------------------------------
def test_take_copies_the_parameters():
    model = MLP(SIZES, seed=1)
    s = take(model, 2)
    assert s.epoch == 2.0 and isinstance(s.epoch, float) and s.layer_sizes == SIZES
    before = s.weights[0].copy()
    model.weights[0] += 1.0  # training goes on in place
    model.biases[1][:] = 7.0
    assert np.array_equal(s.weights[0], before) and s.weights[0].dtype == np.float32
    assert not s.biases[1].any()
    for bad in (-1, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="epoch must be a finite number >= 0"):
            take(model, bad)


def test_round_trip_in_float16(trained):
    model, snaps = trained
    data = encode(snaps)
    assert 2 * 2 * N < len(data) < 2 * 2 * N + 300  # 2 bytes a parameter: half of float32, and a short header
    got = decode(data)
    assert [s.epoch for s in got] == [0.0, 1.0]
    for s in got:
        assert [W.shape for W in s.weights] == [(784, 16), (16, 10)] and [b.shape for b in s.biases] == [(16,), (10,)]
        assert all(a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable for a in s.weights + s.biases)
    assert same(got, snaps)
    assert not np.array_equal(got[0].weights[0], got[1].weights[0])  # training changed them
    big = Snapshot(0.0, [np.full((784, 16), 1e6, np.float32), -np.full((16, 10), 1e6, np.float32)],
                   [np.zeros(16, np.float32), np.zeros(10, np.float32)])
    clipped = decode(encode([big]))[0]  # beyond float16's range: its largest finite value
    assert clipped.weights[0].max() == 65504.0 and clipped.weights[1].min() == -65504.0
    assert decode(data, SIZES)[1].epoch == 1.0
    with pytest.raises(ValueError, match="of a 784-16-10 network, not 784-8-10"):
        decode(data, (784, 8, 10))


def test_encode_refuses_what_decode_would(trained):
    model, snaps = trained
    nan = take(model, 3.0)
    nan.biases[1][0] = np.nan
    other = take(MLP((784, 8, 10)), 2.0)
    cases = [([], "no snapshots"), ([snaps[1], snaps[0]], "ascending"), ([snaps[0], nan], "NaN"),
             ([snaps[0], other], "784-8-10 network, not 784-16-10"),
             ([Snapshot(float(e), model.weights, model.biases) for e in range(25)], "25 snapshots is over the 24")]
    for snapshots, match in cases:
        with pytest.raises(ValueError, match=match):
            encode(snapshots)


@pytest.mark.parametrize("data, match", [
    (b"", "magic line"),
    (b"mnistnet-model\n" + b"\0" * 100, "magic line"),
    (MAGIC + b"\1\0", "magic line"),
    (MAGIC + struct.pack("<I", 5000) + b"{" * 5000, "over 4,096"),
    (MAGIC + struct.pack("<I", 100) + b"{}", "past the end"),
    (MAGIC + struct.pack("<I", 3) + b"\xff\xfe{", "not readable JSON"),
    (MAGIC + struct.pack("<I", 4000) + b"[" * 2000 + b"]" * 2000, "not readable JSON|must hold exactly"),
    (raw([0.0], extra=1), "must hold exactly"),
    (raw([0.0], version=2), "version 2 is newer than this mnistnet reads \\(1\\); upgrade mnistnet"),
    (raw([0.0], version=0), "unknown snapshots format version 0"),
    (raw([0.0], version=True), "unknown snapshots format version"),
    (raw([0.0], dtype="<f4"), "dtype is '<f4', expected '<f2'"),
    (raw([0.0], layer_sizes="784-16-10"), "list of integers"),
    (raw([0.0], layer_sizes=[784, 3000, 10], payload=b""), "hidden layer size 3000 is over the limit of 2048"),
    (raw([0.0], layer_sizes=[784, 16, 9]), "must start with 784 and end with 10"),
    (raw([]), "there are no snapshots"),
    (raw([float(e) for e in range(25)]), "25 snapshots is over the 24"),
    (raw([0.0, 1.0], sizes=(784, 2048, 2048, 10), payload=b"") + b"\0" * 10, "hold 10 bytes"),
    (raw([0.0], sizes=(784, 2048, 2048, 2048, 10), payload=b""), "1 snapshots is over the 0"),
    (raw([1.0, 1.0]), "ascending order, each once"),
    (raw([2.0, 1.0]), "ascending order"),
    (raw([-0.5]), "finite numbers >= 0"),
    (raw(["1"]), "finite numbers >= 0"),
    (raw([10**400]), "finite numbers >= 0"),
    (raw([0.0, 1.0])[:-2], "hold 50,918 bytes of weights, their header says 50,920"),
    (raw([0.0]) + b"\0\0", "hold 25,462 bytes"),
    (raw([0.0, 1.0], payload=np.r_[np.zeros(N), [np.inf], np.zeros(N - 1)].astype("<f2").tobytes()),
     "epoch 1 has NaN or infinite"),
    (raw([0.0], payload=np.full(N, np.nan, "<f2").tobytes()), "epoch 0 has NaN or infinite"),
])
def test_decode_refuses_hostile_bytes(data, match):
    with pytest.raises(ValueError, match=match) as e:
        decode(data)
    assert "\n" not in str(e.value) and "Error" not in str(e.value)


def test_decode_reads_a_hand_made_file():
    a = np.linspace(-2, 2, 2 * N).astype("<f2")  # two snapshots, each W0 b0 W1 b1 in C order
    got = decode(raw([0.0, 0.25], payload=a.tobytes()))
    w0 = a[:784 * 16].reshape(784, 16)
    b1 = a[N + 784 * 16 + 16 + 160:2 * N]
    assert [s.epoch for s in got] == [0.0, 0.25]
    assert np.array_equal(got[0].weights[0], w0.astype(np.float32)) and np.array_equal(got[1].biases[1], b1)


# -- the policy ------------------------------------------------------------------------------------
def test_capacity_and_the_byte_budget():
    assert capacity((784, 512, 256, 10)) == MAX_SNAPSHOTS == 24  # the seed preset: 24 x 1.07 MB
    # 784-2048-2048-10: 5,824,522 parameters; 4 x (14,217,226 - 5,824,522) = 33,570,816 bytes
    # of budget over 2 x 5,824,522 = 11,649,044 a snapshot -> 2 (the first and the last)
    assert capacity((784, 2048, 2048, 10)) == 2
    assert capacity((784, 2048, 2048, 2048, 2048, 10)) == 0
    for sizes in [(784, 1, 10), (784, 300, 10), (784, 1024, 1024, 10), (784, 2048, 1024, 512, 10),
                  (784, 2048, 2048, 10), (784, 1500, 1500, 1500, 10), (784, 2048, 2048, 2048, 2048, 10)]:
        p = parameter_count(sizes)
        # a model with all its snapshots takes no more room than the largest model's float32
        assert 4 * p + capacity(sizes) * 2 * p <= 4 * MAX_PARAMETERS
        assert capacity(sizes) * 2 * p <= 64 * 2**20  # the brief's 64 MB a run


def test_thin_keeps_first_early_last_and_spreads_the_rest():
    epochs = [0.0, 0.05, *map(float, range(1, 101))]
    kept = thin(epochs, 24)
    assert len(kept) == 24 and kept[:2] == [0.0, 0.05] and kept[-1] == 100.0
    gaps = np.diff(kept[2:])
    assert gaps.min() >= 4 and gaps.max() <= 5  # 96 epochs over 21 gaps: 4.57 on average
    assert 4 <= kept[2] <= 6  # the first whole epoch kept is as far from the start as the rest
    assert thin(epochs[:10], 24) == epochs[:10]
    assert thin(reversed(epochs[:10]), 24) == epochs[:10]
    assert thin(epochs, 3) == [0.0, 0.05, 100.0]
    assert thin(epochs, 2) == [0.0, 100.0]
    assert thin(epochs, 1) == [100.0] and thin(epochs, 0) == []
    assert thin([0.0, *map(float, range(1, 31))], 4) == [0.0, 10.0, 20.0, 30.0]  # no early one: evenly


@pytest.mark.parametrize("planned, stop, limit", [(100, 100, 24), (100, 30, 24), (30, 30, 24), (2, 2, 24),
                                                  (1, 1, 24), (50, 7, 5), (20, 20, 2), (20, 9, 1)])
def test_retained_while_training(planned, stop, limit):
    taken = [0.0, 0.05, *map(float, range(1, stop + 1))]
    target = thin([0.0, 0.05, *map(float, range(1, planned + 1))], limit)
    kept, dropped = [], set()
    for e in taken:
        now = retained(kept + [e], planned, limit)
        assert len(now) <= limit and now[-1] == e  # never over, and the newest is always there
        dropped |= set(kept + [e]) - set(now)
        kept = now
    expected = sorted({x for x in target if x <= stop} | {float(stop)})
    assert kept == expected
    assert not dropped & set(kept)  # what is dropped is never needed again
    if stop == planned:
        assert kept == thin(taken, limit)


# -- the training loop -----------------------------------------------------------------------------
def test_train_marks_the_moments(tiny_mnist):
    model = MLP(SIZES, seed=5)
    initial = MLP(SIZES, seed=5)
    calls, order = [], []

    def on_snapshot(epoch):  # with the epochs evaluated so far: n's snapshot follows its evaluation
        calls.append(take(model, epoch))
        order.append(("snapshot", epoch, len(model.history.epochs)))
    progress = lambda p: p.epoch_record and order.append(("epoch", p.epoch))  # noqa: E731
    cfg = TrainConfig(epochs=2, learning_rate=0.1)  # 3,000 images, batch 50: 60 batches
    train(model, tiny_mnist, cfg, progress, on_snapshot=on_snapshot)
    assert [s.epoch for s in calls] == [0.0, 3 / 60, 1.0, 2.0]  # the early one after 3 of 60 batches
    assert order == [("snapshot", 0.0, 0), ("snapshot", 0.05, 0), ("snapshot", 1.0, 1), ("epoch", 1),
                     ("snapshot", 2.0, 2), ("epoch", 2)]
    assert all(np.array_equal(a, b) for a, b in zip(calls[0].weights, initial.weights))
    assert all(np.array_equal(a, b) for a, b in zip(calls[-1].weights, model.weights))
    assert not np.array_equal(calls[1].weights[0], calls[0].weights[0])
    assert not np.array_equal(calls[1].weights[0], calls[2].weights[0])
    plain = MLP(SIZES, seed=5)
    train(plain, tiny_mnist, cfg)  # the same run without snapshots: the same weights
    assert all(np.array_equal(a, b) for a, b in zip(plain.parameters(), model.parameters()))


def test_train_snapshots_a_stopped_epoch_and_tiny_epochs(tiny_mnist):
    model = MLP(SIZES, seed=5)
    calls, batches = [], [0]

    def stop():
        batches[0] += 1
        return batches[0] == 70  # epoch 2, batch 10 of 60
    hist = train(model, tiny_mnist, TrainConfig(epochs=5, learning_rate=0.1), should_stop=stop,
                 on_snapshot=lambda e: calls.append(take(model, e)))
    assert hist.status == "stopped" and hist.epochs[-1]["partial"]
    assert [s.epoch for s in calls] == [0.0, 0.05, 1.0, 2.0]
    assert all(np.array_equal(a, b) for a, b in zip(calls[-1].weights, model.weights))
    calls.clear()
    train(MLP(SIZES), tiny_mnist, TrainConfig(epochs=2, train_size=50, batch_size=50),
          on_snapshot=lambda e: calls.append(e))
    assert calls == [0.0, 1.0, 2.0]  # one batch an epoch: "early" would be the whole epoch


# -- the store -------------------------------------------------------------------------------------
@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.engine.dispose()


def _rows(store, model_id) -> int:
    with store.engine.connect() as c:
        return c.execute(sa.text("SELECT count(*) FROM snapshots WHERE model_id = :m"), {"m": model_id}).scalar()


def test_a_recorded_run_keeps_its_snapshots(store, tiny_mnist):
    model = MLP(SIZES, seed=1)
    seen = []

    def at_epoch(p):  # the store, as each epoch ends (a killed server keeps what is there)
        if p.epoch_record:
            mid = store.list_runs()[0]["model_id"]  # the store's only run
            seen.append([s.epoch for s in store.model_snapshots(mid)])
    run = train_recorded(store, model, tiny_mnist, TrainConfig(epochs=3, learning_rate=0.1), "cli",
                         on_progress=at_epoch)
    assert seen == [[0.0, 0.05, 1.0], [0.0, 0.05, 1.0, 2.0], [0.0, 0.05, 1.0, 2.0, 3.0]]
    snaps = store.model_snapshots(run.model_id)
    assert same(snaps[-1:], [model]) and all(a.dtype == np.float32 for a in snaps[0].weights)
    assert same(snaps[:1], [MLP(SIZES, seed=1)])

    copy = store.copy_model(run.model_id, "alice", "copy")  # "Use this model"
    assert same(store.model_snapshots(copy), snaps)
    store.set_current("alice", copy, "a copy")
    store.delete_run(run.run_id, CLI_OWNER)
    assert _rows(store, run.model_id) == 0 and same(store.model_snapshots(copy), snaps)  # the copy keeps them
    other = store.copy_model(copy, "alice", "another")
    store.set_current("alice", other, "another copy")  # the first copy is deleted, with its snapshots
    assert _rows(store, copy) == 0 and store.model_snapshots(copy) == [] and _rows(store, other) == 5

    blob = store.model_blob(other)  # the download carries them
    assert blob == store.model_blob(other)  # the same file each time
    loaded = load_model(blob)
    assert [s.epoch for s in loaded.snapshots] == [0.0, 0.05, 1.0, 2.0, 3.0] and same(loaded.snapshots, snaps)
    up = import_model_upload(store, blob, "mine.npz", "bob")  # and an upload keeps them
    assert same(store.model_snapshots(up.model_id), snaps)
    with zipfile.ZipFile(io.BytesIO(store._npz(up.model_id))) as z:  # as rows, not twice
        assert "snapshots.npy" not in z.namelist()
    assert store.model_blob(up.model_id) == blob


def test_a_long_run_is_thinned_and_a_stopped_one_ends_with_its_last(store, tiny_mnist):
    cfg = TrainConfig(epochs=40, learning_rate=0.1, train_size=300)
    counts = []
    model = MLP(SIZES, seed=2)

    def at_epoch(p):
        if p.epoch_record:
            counts.append(_rows(store, store.list_runs()[0]["model_id"]))  # the newest run's
    run = train_recorded(store, model, tiny_mnist, cfg, "cli", on_progress=at_epoch)
    assert max(counts) == 24  # never more, at any epoch and len(counts) == 40
    epochs = [s.epoch for s in store.model_snapshots(run.model_id)]
    early = 1 / 6  # 300 images, batch 50: 6 batches, and the early snapshot after the first
    assert epochs == thin([0.0, early, *map(float, range(1, 41))], 24) and len(epochs) == 24
    assert same(store.model_snapshots(run.model_id)[-1:], [model])
    stopped = MLP(SIZES, seed=3)
    ticks = [0]

    def stop():
        ticks[0] += 1
        return ticks[0] == 6 * 13 + 2  # during epoch 14
    run2 = train_recorded(store, stopped, tiny_mnist, cfg, "cli", should_stop=stop)
    got = [s.epoch for s in store.model_snapshots(run2.model_id)]
    assert got[-1] == 14.0 and run2.history.status == "stopped"
    assert got == [e for e in thin([0.0, early, *map(float, range(1, 41))], 24) if e < 14] + [14.0]


def test_schema_3_is_upgraded_to_5(db_url):
    store = Store(db_url)
    mid = store.add_uploaded_model(MLP(SIZES), "old.npz", "alice")[1]
    store.engine.dispose()
    engine = sa.create_engine(db_url)
    with engine.begin() as c:  # the store as schema 3 left it: no snapshots table, no heartbeats
        c.execute(sa.text("DROP TABLE snapshots"))
        c.execute(sa.text("ALTER TABLE runs DROP COLUMN heartbeat_at"))
        c.execute(sa.text("UPDATE meta SET value='3' WHERE key='schema_version'"))
    with engine.connect() as c:
        assert not sa.inspect(c).has_table("snapshots")
    engine.dispose()
    store = Store(db_url)
    assert store.schema_version() == SCHEMA_VERSION == 5
    assert store.model_snapshots(mid) == []  # a model from before has none
    blob = model_bytes(MLP(SIZES), [take(MLP(SIZES), 0.0)])
    up = import_model_upload(store, blob, "new.npz", "alice")
    assert [s.epoch for s in store.model_snapshots(up.model_id)] == [0.0]
    store.engine.dispose()


# -- model files -----------------------------------------------------------------------------------
def test_model_files_carry_snapshots_and_older_files_load(trained, tmp_path):
    model, snaps = trained
    data = model_bytes(model, snaps)
    loaded = load_model(data)
    assert same(loaded.snapshots, snaps)
    assert model_bytes(loaded) == data  # saved again, they stay
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        assert int(z["version"]) == 2 and z["snapshots"].dtype == np.uint8
        arrays = {k: z[k] for k in z.files if k != "snapshots"}
    buf = io.BytesIO()
    np.savez(buf, **{**arrays, "version": np.array(1)})  # a file of format version 1
    old = load_model(buf.getvalue())
    assert old.snapshots == [] and np.array_equal(old.weights[0], model.weights[0])
    assert load_model(model_bytes(model, [])).snapshots == []
    with pytest.raises(ValueError, match="of a 784-8-10 network, not 784-16-10"):
        model_bytes(model, [take(MLP((784, 8, 10)), 0.0)])


def test_the_largest_file_with_snapshots_stays_within_the_file_limit():
    sizes = (784, 1024, 1024, 10)
    model = MLP(sizes)
    n = capacity(sizes)
    assert n == 13  # 4 x (14,217,226 - 1,863,690) // (2 x 1,863,690) = 49,414,144 // 3,727,380
    snaps = [Snapshot(float(e), model.weights, model.biases) for e in range(n)]
    data = model_bytes(model, snaps)
    assert 4 * 1_863_690 + 13 * 2 * 1_863_690 < len(data) <= MAX_FILE_BYTES
    assert len(load_model(data).snapshots) == 13


def test_cli_train_out_saves_snapshots(tmp_path):
    out = tmp_path / "m.npz"
    assert "mnistnet-test-db-" in os.environ["MNISTNET_DB_URL"]
    # the test session's store (conftest): MNIST is imported into it once
    r = subprocess.run([sys.executable, "-m", "mnistnet", "train", "--hidden", "16", "--epochs", "2", "--out",
                        str(out), "--quiet", "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    model = load_model(out)
    assert [s.epoch for s in model.snapshots] == [0.0, 0.05, 1.0, 2.0]  # 1,000 batches: the early one after 50
    assert same(model.snapshots[-1:], [model])


# -- the session -----------------------------------------------------------------------------------
def _session_script():
    import streamlit as st

    from ui import session

    snaps = session.current_snapshots()
    st.write(repr([s.epoch for s in snaps]))
    st.write(repr(session.current_snapshots() is snaps))


def _snapshots_for(owner, data, model):
    from ui import identity, session
    at = AppTest.from_function(_session_script, default_timeout=60)
    at.session_state[session.INJECT_KEY] = session.Injected(data, model)
    at.session_state[identity.OWNER_KEY] = owner
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return [m.value for m in at.markdown]


def test_current_snapshots_follow_the_visitors_model(tiny_mnist, tiny_model):
    store = Store()  # the test session's own store (conftest), as the app's resources.store()
    assert "mnistnet-test-db-" in os.environ["MNISTNET_DB_URL"]
    run = train_recorded(store, MLP(SIZES, seed=4), tiny_mnist, TrainConfig(epochs=2), "app", owner="v-snap-a")
    copy = store.copy_model(run.model_id, "v-snap-b", "copy of the run")
    store.set_current("v-snap-b", copy, "a run, from the Runs page")
    assert _snapshots_for("v-snap-b", tiny_mnist, tiny_model) == ["[0.0, 0.05, 1.0, 2.0]", "True"]
    plain = import_model_upload(store, model_bytes(MLP(SIZES)), "plain.npz", "v-snap-c")
    store.set_current("v-snap-c", plain.model_id, "an upload")
    assert _snapshots_for("v-snap-c", tiny_mnist, tiny_model)[0] == "[]"  # a file without snapshots
    assert _snapshots_for("v-snap-d", tiny_mnist, tiny_model)[0] == "[]"  # no model of theirs: the injected one
    store.engine.dispose()


def test_a_seed_preset_snapshot_is_half_its_float32():
    sizes = (784, 512, 256, 10)  # 535,818 parameters: 2.14 MB of float32
    data = encode([take(MLP(sizes), 0.0)])
    assert 2 * 535_818 < len(data) < 2 * 535_818 + 300
