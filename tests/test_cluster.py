"""Training on a real Dask cluster: an embedded scheduler and two workers (child processes, as
the app starts them), with the store as the channel. Queueing, progress, stop while queued,
stop while running, a worker that ignores Stop, a worker killed mid-run, a server that died.
"""

import os
import signal
import socket
import time

import pytest
import sqlalchemy as sa
from cluster_tasks import stubborn
from distributed import fire_and_forget

from mnistnet import TrainConfig, load_mnist
from mnistnet.cluster import STOP_GRACE_S, Cluster, _scheduler_view, connect, task_key
from mnistnet.store import HEARTBEAT_LIMIT_S, Store

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = TrainConfig(epochs=2, train_size=2000, learning_rate=0.1, progress_every=5).to_dict()
LONG = TrainConfig(epochs=60, train_size=20000, learning_rate=0.1, progress_every=5).to_dict()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(f"sqlite:///{tmp_path_factory.mktemp('cluster')}/store.sqlite3")
    s.import_mnist(load_mnist())
    return s


@pytest.fixture(scope="module")
def cluster(store):
    os.environ["PYTHONPATH"] = os.pathsep.join([HERE, *filter(None, [os.environ.get("PYTHONPATH")])])
    c = Cluster(store, n_workers=2)  # its workers can import cluster_tasks
    deadline = time.monotonic() + 60
    while c.workers() < 2:
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)
    yield c
    c.close()


def wait(store, cluster, run_id, statuses, timeout=120.0, reconcile=True) -> dict:
    """Poll the store (and reconcile, as the app's watchdog does) until the run reaches one of
    `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        row = store.run(run_id)
        if row["status"] in statuses:
            return row
        assert time.monotonic() < deadline, f"run {run_id} is still {row['status']}"
        if reconcile:
            cluster.reconcile()
        time.sleep(0.1)


def submit(store, cluster, config=SMALL, hidden=(32,), owner="alice") -> int:
    run_id = store.submit_run(owner, (784, *hidden, 10), config, "app", scheduler=cluster.address,
                              spec={"make_current": True})
    cluster.submit(run_id)
    return run_id


def test_more_runs_than_workers_queue_and_all_finish(store, cluster):
    ids = [submit(store, cluster, owner=f"v{i}") for i in range(4)]
    positions = [store.queue_position(i) for i in ids if store.run(i)["status"] == "queued"]
    assert positions == sorted(positions)
    rows = [wait(store, cluster, i, ("finished",)) for i in ids]
    for row in rows:
        assert row["epochs"] == 2 and row["model_id"] is not None and row["progress"]["samples_seen"] == 4000
        assert row["worker"].startswith("tls://127.0.0.1:") and row["losses"]
        assert [e["epoch"] for e in store.run_epochs(row["id"])] == [1, 2]
        assert store.current(row["owner"])["model_id"] == row["model_id"]  # made current, by its owner
    assert len({r["worker"] for r in rows}) == 2  # both workers trained


def test_stop_while_queued_never_runs(store, cluster):
    busy = [submit(store, cluster, LONG, owner="busy") for _ in range(2)]
    wait(store, cluster, busy[1], ("running",), reconcile=False)
    queued = submit(store, cluster)
    assert store.run(queued)["status"] == "queued" and store.queue_position(queued) == 0
    assert store.request_stop(queued, "alice") == "cancelled"
    cluster.cancel(queued)
    deadline = time.monotonic() + 10  # cancelled on the scheduler too, not only in the store
    while task_key(queued) in cluster.client.run_on_scheduler(_scheduler_view)["tasks"]:
        assert time.monotonic() < deadline, "the cancelled run's task is still on the scheduler"
        time.sleep(0.05)
    for run_id in busy:
        store.request_stop(run_id, "busy")
    for run_id in busy:
        assert wait(store, cluster, run_id, ("stopped",))["error"] is None
    # The workers are free again: a run submitted after the stopped one starts and finishes,
    # so the workers have taken what was queued for them; the stopped run never ran.
    wait(store, cluster, submit(store, cluster), ("finished",))
    row = store.run(queued)
    assert row["status"] == "cancelled" and row["running_at"] is None and row["epochs"] == 0


def test_stop_while_running_keeps_the_last_model(store, cluster):
    run_id = submit(store, cluster, LONG)
    row = wait(store, cluster, run_id, ("running",))
    while not store.run_epochs(run_id):
        time.sleep(0.1)
    store.request_stop(run_id, "alice")
    row = wait(store, cluster, run_id, ("stopped",))
    assert row["error"] is None  # it stopped by itself: no worker was killed
    assert row["model_id"] is not None and row["epochs"] >= 2  # finished epochs + the partial one
    assert store.run_epochs(run_id)[-1]["partial"]


def test_a_worker_that_ignores_stop_is_restarted_and_the_run_stopped(store, cluster):
    run_id = store.submit_run("alice", (784, 32, 10), SMALL, "app", scheduler=cluster.address)
    fire_and_forget(cluster.client.submit(stubborn, store.url, run_id, key=task_key(run_id), pure=False))
    row = wait(store, cluster, run_id, ("running",), reconcile=False)
    pid = row["pid"]
    asked = time.monotonic()
    store.request_stop(run_id, "alice")
    row = wait(store, cluster, run_id, ("stopped",))
    assert time.monotonic() - asked >= STOP_GRACE_S  # never before the grace (how long after: bench/stop.py)
    assert "did not stop within" in row["error"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # that worker is gone...
    deadline = time.monotonic() + 60
    while cluster.workers() < 2:  # ... and another took its place
        assert time.monotonic() < deadline
        time.sleep(0.1)
    after = submit(store, cluster)
    assert wait(store, cluster, after, ("finished",))["epochs"] == 2


def test_a_worker_killed_mid_run_marks_its_run_interrupted(store, cluster):
    run_id = submit(store, cluster, LONG)
    wait(store, cluster, run_id, ("running",))
    while not store.run_epochs(run_id):
        time.sleep(0.1)
    os.kill(store.run(run_id)["pid"], signal.SIGKILL)
    row = wait(store, cluster, run_id, ("interrupted",))
    n = len(store.run_epochs(run_id))
    assert row["error"] == f"the worker stopped during epoch {n + 1}; the model of epoch {n} is kept"
    assert row["model_id"] is not None
    others = [submit(store, cluster) for _ in range(2)]  # the cluster goes on
    for other in others:
        assert wait(store, cluster, other, ("finished",))["status"] == "finished"


def test_runs_of_a_server_that_died_are_interrupted(store, cluster):
    with socket.socket() as s:  # a port nothing listens on: a scheduler that died with its server
        s.bind(("127.0.0.1", 0))
        gone = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    running = store.submit_run("alice", (784, 32, 10), SMALL, "app", scheduler=gone)
    store.claim_run(running, "tcp://127.0.0.1:1", "elsewhere", 1)
    queued = store.submit_run("alice", (784, 32, 10), SMALL, "app", scheduler=gone)
    cluster.reconcile()  # the running one's heartbeat is fresh: it may be training still
    assert store.run(running)["status"] == "running"
    assert store.run(queued)["status"] == "interrupted"  # its scheduler does not answer
    with store._write() as c:  # its runner has been silent for longer than the limit
        c.execute(sa.text("UPDATE runs SET heartbeat_at = :t WHERE id = :r"),
                  {"t": time.time() - HEARTBEAT_LIMIT_S - 1, "r": running})
    cluster.reconcile()
    row = store.run(running)
    assert row["status"] == "interrupted"
    assert row["error"] == ("the training process stopped during epoch 1; no epoch had finished, "
                            "so there is no model")


def test_stop_ends_runs_by_themselves(store, cluster):
    """Stop -> stopped, three times, on a run that reads its flag: with no watchdog running,
    the run ends by itself (how quickly: bench/stop.py)."""
    for _ in range(3):
        run_id = submit(store, cluster, LONG)
        wait(store, cluster, run_id, ("running",), reconcile=False)
        assert store.request_stop(run_id, "alice") == "stopping"
        row = wait(store, cluster, run_id, ("stopped",), reconcile=False)
        assert row["error"] is None


def test_the_scheduler_refuses_a_client_without_its_certificate(cluster):
    assert cluster.address.startswith("tls://127.0.0.1:")
    for address, security in ((cluster.address.replace("tls://", "tcp://"), None),  # plain TCP
                              (cluster.address, None)):  # TLS without the lab's certificate
        with pytest.raises(ConnectionError, match="could not connect to the training cluster at"):
            connect(address, security, timeout=3).close()
    assert cluster.workers() == 2  # the lab's own client still works


def test_a_dead_scheduler_is_replaced(store, cluster):
    """Last in this file: the embedded scheduler killed, the watchdog's next pass starts
    another, and training goes on there."""
    old = cluster.address
    cluster.embedded.scheduler.kill()
    cluster.embedded.scheduler.wait()
    cluster.reconcile()
    assert cluster.address != old and cluster.embedded.scheduler_alive()
    deadline = time.monotonic() + 60
    while cluster.workers() < 2:
        assert time.monotonic() < deadline, "the new scheduler's workers did not start"
        time.sleep(0.1)
    assert wait(store, cluster, submit(store, cluster), ("finished",))["epochs"] == 2
