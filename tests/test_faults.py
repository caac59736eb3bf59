"""Fault injection on the run lifecycle (mnistnet.store.lifecycle), on SQLite and PostgreSQL:
Stop racing claim, a forced stop that must not touch another run, a CLI run beside a second host,
a CLI run killed -9, four workers importing MNIST at once, two set_current at once.

Races are made, not hoped for: threads released by one barrier, processes released by one go
file, and a runner frozen with SIGSTOP while the test looks at it (its pace is ours). Each test
asserts the final state of every run it made, and that a bystander run was not touched.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from mnistnet import MLP, load_mnist
from mnistnet.store import CLI_OWNER, Store

ROOT = Path(__file__).resolve().parent.parent
SIZES = [784, 16, 10]
RACES = 60  # Stop against claim, per database


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def bystander(store: Store) -> tuple[int, dict]:
    """A run training on a worker of its own, and its row as it is now."""
    run_id = store.submit_run("bystander", SIZES, {}, "app")
    assert store.claim_run(run_id, "tcp://bystander:1", "elsewhere", 4242)
    return run_id, store.run(run_id)


def untouched(store: Store, run_id: int, before: dict) -> None:
    after = store.run(run_id)
    for key in ("status", "worker", "pid", "ended_at", "error", "stop_requested"):
        assert after[key] == before[key], key


def at_once(*calls) -> list:
    """Run each (function, *args) in a thread of its own, all released by one barrier -> their
    results, or the exception each raised."""
    go, out = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i, fn, *args):
        go.wait()
        try:
            out[i] = fn(*args)
        except Exception as e:  # noqa: BLE001 (the caller asserts on it)
            out[i] = e

    threads = [threading.Thread(target=run, args=(i, *call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_stop_racing_claim_never_loses_the_stop(db_url):
    store = Store(db_url)
    other, before = bystander(store)
    outcomes = {"cancelled": 0, "stopping": 0}
    for _ in range(RACES):
        run_id = store.submit_run("alice", SIZES, {}, "app")
        stopped, claimed = at_once((store.request_stop, run_id, "alice"),
                                   (store.claim_run, run_id, "tcp://w:1", "h", 1))
        said = {"stop": stopped, "claim": claimed}
        row = store.run(run_id)
        if said["claim"]:  # the worker got it: the Stop must be waiting for it, not lost
            assert said["stop"] == "stopping" and row["status"] == "stopping" and store.should_stop(run_id)
            assert store.end_run(run_id, "stopped", worker="tcp://w:1") is None
            assert store.run(run_id)["status"] == "stopped"
        else:  # the Stop came first: nobody may train it
            assert said["stop"] == "cancelled" and row["status"] == "cancelled" and row["running_at"] is None
            assert not store.claim_run(run_id, "tcp://w:2", "h", 2)
        outcomes[said["stop"]] += 1
    untouched(store, other, before)
    assert sum(outcomes.values()) == RACES


def test_a_forced_stop_never_kills_a_worker_that_moved_on(db_url):
    store = Store(db_url)
    other, before = bystander(store)
    a = store.submit_run("alice", SIZES, {}, "app")
    store.claim_run(a, "tcp://w:1", "h", 11)
    assert store.request_stop(a, "alice") == "stopping"
    stale = store.run(a)  # what a reconcile pass read before the run ended by itself
    assert store.end_run(a, "stopped", worker="tcp://w:1") is None
    b = store.submit_run("bob", SIZES, {}, "app")
    store.claim_run(b, "tcp://w:1", "h", 11)  # the same worker took the next run
    killed = []
    assert not store.force_stop(a, stale["worker"], stale["pid"], 0.0, lambda: killed.append(a))
    assert killed == [] and store.run(b)["status"] == "running" and store.run(a)["error"] is None
    # A run that is still stopping on its worker past the grace is stopped, its worker killed
    # inside the same transaction.
    assert store.request_stop(b, "bob") == "stopping"
    assert not store.force_stop(b, "tcp://w:1", 11, 3600.0, lambda: killed.append(b))  # not overdue
    assert not store.force_stop(b, "tcp://w:1", 12, 0.0, lambda: killed.append(b))  # another process
    assert store.force_stop(b, "tcp://w:1", 11, 0.0, lambda: killed.append(b))
    row = store.run(b)
    assert killed == [b] and row["status"] == "stopped" and "did not stop within" in row["error"]
    untouched(store, other, before)


def test_set_current_twice_at_once(db_url):
    store = Store(db_url)
    ids = [store.add_uploaded_model(MLP(SIZES, seed=i), f"m{i}.npz", "alice")[1] for i in range(2)]
    for _ in range(20):
        assert at_once(*((store.set_current, "carol", m, f"model {m}", 0.5) for m in ids)) == [None, None]
        assert store.current("carol")["model_id"] in ids
    with store.engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM current WHERE owner = 'carol'")).scalar() == 1


IMPORTER = """
import os, sys, time
from mnistnet import load_mnist
from mnistnet.store import Store
url, ready, go = sys.argv[1:]
data = load_mnist()
store = Store(url)
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
print(store.import_mnist(data))
"""


def test_four_workers_on_an_empty_store_import_mnist_once(db_url, tmp_path):
    Store(db_url).engine.dispose()  # the schema exists; MNIST does not
    go = tmp_path / "go"
    procs = []
    for i in range(4):
        ready = tmp_path / f"ready{i}"
        procs.append((ready, subprocess.Popen([sys.executable, "-c", IMPORTER, db_url, str(ready), str(go)],
                                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    deadline = time.monotonic() + 120
    while not all(r.exists() for r, _ in procs):
        assert time.monotonic() < deadline, [p.stderr.read() for _, p in procs if p.poll() is not None]
        time.sleep(0.01)
    go.touch()
    inserted = []
    for _, p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        inserted.append(int(out.strip()))
    assert sorted(inserted) == [0, 0, 0, 70_000]
    with sa.create_engine(db_url).connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM samples WHERE dataset = 'mnist'")).scalar() == 70_000


def _cli(env, *args, host=None) -> subprocess.Popen:
    """`python -m mnistnet train ...` as the CLI runs it; on another host name if `host` (a UTS
    namespace of its own: the same machine, but socket.gethostname() says `host`)."""
    cmd = [sys.executable, "-m", "mnistnet", "train", "--quiet", *args]
    if host:
        cmd = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *cmd]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _newest_cli_run(engine, before: int):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT id FROM runs WHERE id > :b AND origin = 'cli'"), {"b": before}).scalar()


WATCHER = """
import os, sys, time
from mnistnet.store import Store
url, stop_file = sys.argv[1:]
store = Store(url)
passes = 0
while not os.path.exists(stop_file):
    store.interrupt_silent(limit_s=3.0)  # far stricter than the lab's limit: a beat is 1 s
    store.lose_unanswered()
    Store(url).engine.dispose()  # a fresh opening too, as a new server or CLI does
    passes += 1
    time.sleep(0.1)
print(passes)
"""


def test_a_cli_run_is_not_interrupted_by_a_store_opened_on_another_host(db_url, mnist, tmp_path):
    Store(db_url).import_mnist(mnist)
    env = {**os.environ, "MNISTNET_DB_URL": db_url}
    stop_file = tmp_path / "stop"
    watcher = subprocess.Popen(["unshare", "--uts", "sh", "-c", 'hostname host-b && exec "$@"', "sh",
                                sys.executable, "-c", WATCHER, db_url, str(stop_file)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run = _cli(env, "--hidden", "32", "--epochs", "4", host="host-a")
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    finally:
        stop_file.touch()
        out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    assert int(out) > 10  # it looked many times while the run trained
    row = Store(db_url).list_runs(owner=CLI_OWNER)[0]
    assert row["status"] == "finished" and row["epochs"] == 4 and row["worker"].endswith(" on host-a")


def test_a_cli_run_killed_mid_epoch_is_interrupted_by_its_heartbeat(db_url, mnist):
    Store(db_url).import_mnist(mnist)  # as `mnistnet fetch` would have; the CLI run starts training at once
    env = {**os.environ, "MNISTNET_DB_URL": db_url}
    engine = sa.create_engine(db_url)
    before = max([r["id"] for r in Store(db_url).list_runs()], default=0)
    proc = _cli(env, "--hidden", "64", "--epochs", "100")
    try:
        deadline = time.monotonic() + 240
        done = 0
        while done < 2:  # two finished epochs; the run has 98 more to go
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
            run_id = _newest_cli_run(engine, before)
            if run_id:
                with engine.connect() as c:
                    done = c.execute(sa.text("SELECT count(*) FROM epochs WHERE run_id = :r"), {"r": run_id}).scalar()
        proc.send_signal(signal.SIGSTOP)  # frozen where it is: mid-epoch, its heartbeat too
        with engine.connect() as c:
            status, progress = c.execute(sa.text("SELECT status, progress FROM runs WHERE id = :r"),
                                         {"r": run_id}).first()
        assert status == "running" and json.loads(progress)["epoch"] >= 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with engine.connect() as c:
        if engine.dialect.name == "sqlite":  # PostgreSQL has no such pragma; its server outlives the client
            assert c.execute(sa.text("PRAGMA integrity_check")).scalar() == "ok"
        beat = c.execute(sa.text("SELECT heartbeat_at FROM runs WHERE id = :r"), {"r": run_id}).scalar()
    engine.dispose()
    store = Store(db_url)  # a new opening within the limit: the run may still be alive
    assert store.run(run_id)["status"] == "running"
    while time.time() - beat <= 1.0:  # its last heartbeat is now older than a 1 s limit
        time.sleep(0.05)
    assert store.interrupt_silent(limit_s=1.0) == [run_id]
    row = store.run(run_id)
    n = row["epochs"]
    assert row["status"] == "interrupted" and n >= 2 and row["model_id"] is not None
    assert row["error"] == f"the training process stopped during epoch {n + 1}; the model of epoch {n} is kept"
    assert [e["epoch"] for e in store.run_epochs(run_id)] == list(range(1, n + 1))
