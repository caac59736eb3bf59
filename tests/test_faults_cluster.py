"""Fault injection on a real Dask cluster of three workers (the embedded one, TLS and all), on
SQLite and on PostgreSQL: Stop racing the workers' claims, Stop while a worker evaluates an
epoch, a worker killed mid-epoch. A worker's pace is ours: it is frozen with SIGSTOP where the
test needs it, and let go with SIGCONT. Every test checks every run it made, and that the runs
it did not aim at were not touched.
"""

import os
import random
import signal
import time

import pytest
import sqlalchemy as sa

from mnistnet import TrainConfig, load_mnist
from mnistnet.cluster import Cluster, _scheduler_view
from mnistnet.store import Store
from mnistnet.store.schema import runs

SMALL = TrainConfig(epochs=2, train_size=2000, learning_rate=0.1, progress_every=5).to_dict()
LONG = TrainConfig(epochs=100, train_size=5000, learning_rate=0.1, progress_every=5).to_dict()
PASSWORD = "s3cret-pw"  # the test server trusts every local login: a password it never checks


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def lab(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('faults')}/store.sqlite3"
    else:
        url = request.getfixturevalue("postgres").new_database().replace("postgres@", f"postgres:{PASSWORD}@")
    store = Store(url)
    store.import_mnist(load_mnist())
    cluster = Cluster(store, n_workers=3)
    deadline = time.monotonic() + 60
    while cluster.workers() < 3:
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)
    yield store, cluster
    cluster.close()


def submit(lab, config=LONG, owner="alice", hidden=(64,)) -> int:
    store, cluster = lab
    run_id = store.submit_run(owner, (784, *hidden, 10), config, "app", scheduler=cluster.address)
    cluster.submit(run_id)
    return run_id


def until(lab, run_id, test, timeout=120.0) -> dict:
    """Reconcile (as the app's watchdog does) until test(row) holds -> the row."""
    store, cluster = lab
    deadline = time.monotonic() + timeout
    while not test(row := store.run(run_id)):
        assert time.monotonic() < deadline, f"run {run_id}: {row['status']}, {row['progress']}"
        cluster.reconcile()
        time.sleep(0.02)
    return row


def ended(lab, run_id) -> dict:
    return until(lab, run_id, lambda r: r["status"] not in ("queued", "running", "stopping"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_no_password_in_the_tasks(lab):
    store, cluster = lab
    run_id = submit(lab)
    until(lab, run_id, lambda r: r["status"] == "running")  # its task is on the scheduler until it ends
    specs = cluster.client.run_on_scheduler(
        lambda dask_scheduler: {str(k): repr(ts.run_spec) for k, ts in dask_scheduler.tasks.items()})
    assert f"mnistnet-run-{run_id}" in specs and not any(PASSWORD in s for s in specs.values())
    store.request_stop(run_id, "alice")
    assert ended(lab, run_id)["status"] == "stopped"
    logs = "".join(open(os.path.join(cluster.embedded.folder, f)).read()
                   for f in os.listdir(cluster.embedded.folder) if f.endswith(".log"))
    assert PASSWORD not in logs


def test_stop_racing_the_workers_claims(lab):
    """Runs stopped a random few milliseconds after they are queued, while three workers take
    them: each ends cancelled (never trained) or stopped, and the bystander trains on."""
    store, cluster = lab
    other = submit(lab, owner="bystander")
    until(lab, other, lambda r: r["status"] == "running")
    rng = random.Random(0)
    ids = []
    for _ in range(12):
        run_id = submit(lab)
        time.sleep(rng.uniform(0, 0.3))
        assert store.request_stop(run_id, "alice") in ("cancelled", "stopping")
        ids.append(run_id)
    for run_id in ids:
        row = ended(lab, run_id)
        assert row["status"] in ("cancelled", "stopped"), row
        if row["status"] == "cancelled":
            assert row["running_at"] is None and row["epochs"] == 0
            cluster.cancel(run_id)
        else:
            assert row["error"] is None  # it stopped itself: no worker was killed
    row = store.run(other)
    assert row["status"] == "running" and row["error"] is None and not row["stop_requested"]
    store.request_stop(other, "bystander")
    assert ended(lab, other)["status"] == "stopped"
    views = cluster.client.run_on_scheduler(_scheduler_view)["tasks"]
    assert all(views.get(f"mnistnet-run-{i}") in (None, "memory") for i in ids)


def test_stop_while_the_worker_evaluates_an_epoch(lab):
    """Epoch k recorded, the run's row locked by the test: the worker trains epoch k+1 (a few
    batches, quicker than its progress writes), measures the three sets, and waits on the lock
    to record it. Stop is committed in that same transaction. The run stops by itself within
    the grace, keeps every epoch it recorded, and its worker lives."""
    store, cluster = lab
    other = submit(lab, owner="bystander")
    run_id = submit(lab, TrainConfig(epochs=100, train_size=500, progress_every=1).to_dict(), hidden=(256,))
    row = until(lab, run_id, lambda r: r["status"] == "running" and r["epochs"] >= 2)
    pid, k = row["pid"], row["epochs"]
    with store._write() as c:
        if store.engine.dialect.name == "postgresql":
            c.execute(sa.select(runs.c.id).where(runs.c.id == run_id).with_for_update())
        time.sleep(1.0)  # epoch k+1 trains and is measured meanwhile (about 0.1 s); its record waits
        c.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "running")
                  .values(status="stopping", stop_requested_at=time.time()))
    row = ended(lab, run_id)
    assert row["status"] == "stopped" and row["error"] is None  # by itself, within the grace
    assert alive(pid)  # no worker was killed
    epochs = [e["epoch"] for e in store.run_epochs(run_id)]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= k + 1  # epoch k+1's record kept
    assert row["model_id"] is not None
    assert store.run(other)["status"] in ("queued", "running") and store.run(other)["error"] is None
    store.request_stop(other, "bystander")
    assert ended(lab, other)["status"] in ("stopped", "cancelled")


def test_a_worker_killed_mid_epoch(lab):
    """Three runs on three workers; one worker frozen mid-epoch and killed: its run is
    interrupted with its finished epochs kept, the other two train on, and a new worker takes
    the dead one's place."""
    store, cluster = lab
    ids = [submit(lab, owner=f"v{i}") for i in range(3)]
    rows = [until(lab, i, lambda r: r["status"] == "running" and r["epochs"] >= 1) for i in ids]
    victim = rows[0]
    os.kill(victim["pid"], signal.SIGSTOP)
    frozen = store.run(victim["id"])
    assert frozen["status"] == "running"
    os.kill(victim["pid"], signal.SIGKILL)
    row = until(lab, victim["id"], lambda r: r["status"] == "interrupted")
    n = row["epochs"]
    assert n >= frozen["epochs"] >= 1 and row["model_id"] is not None
    assert row["error"] == f"the worker stopped during epoch {n + 1}; the model of epoch {n} is kept"
    for other in ids[1:]:
        assert store.run(other)["status"] == "running" and store.run(other)["error"] is None
    deadline = time.monotonic() + 60
    while cluster.workers() < 3:
        assert time.monotonic() < deadline, "no worker took the dead one's place"
        cluster.reconcile()
        time.sleep(0.1)
    for other in ids[1:]:
        store.request_stop(other, f"v{ids.index(other)}")
        assert ended(lab, other)["status"] == "stopped"
    assert ended(lab, submit(lab, SMALL))["status"] == "finished"  # the cluster goes on
