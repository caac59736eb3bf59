"""The cluster by address: a real `dask scheduler` and two `dask worker` processes on 127.0.0.1,
and `python -m mnistnet sweep` reaching them through MNISTNET_SCHEDULER. One worker is killed
with SIGKILL mid-run: its run is marked interrupted with a plain message, the rest finish."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnistnet import load_mnist
from mnistnet.cluster import DASK_ENV
from mnistnet.store import Store

ROOT = Path(__file__).resolve().parent.parent
DASK = [sys.executable, "-m"]


@pytest.fixture
def cluster_by_address(tmp_path):
    env = {**os.environ, **DASK_ENV, "PYTHONPATH": str(ROOT)}
    sched_file = tmp_path / "scheduler.json"
    logs = open(tmp_path / "dask.log", "w")  # noqa: SIM115 (closed below)
    procs = [subprocess.Popen(DASK + ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                      "--no-dashboard", "--scheduler-file", str(sched_file)],
                              env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True)]
    deadline = time.monotonic() + 60
    address = None
    while address is None:  # the file appears before the scheduler has finished writing it
        assert time.monotonic() < deadline, "the scheduler did not start"
        try:
            address = json.loads(sched_file.read_text())["address"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.1)
    for i in range(2):  # with a nanny each, as `dask worker ADDRESS` starts them on another machine
        procs.append(subprocess.Popen(DASK + ["distributed.cli.dask_worker", address, "--nthreads", "1",
                                              "--nworkers", "1", "--no-dashboard", "--name", f"far-{i}"],
                                      env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True))
    try:
        yield address
    finally:
        for p in procs:  # each with its own process group: the nanny's worker goes too
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        logs.close()


def test_a_sweep_through_a_scheduler_by_address_survives_a_killed_worker(tmp_path, cluster_by_address):
    url = f"sqlite:///{tmp_path}/store.sqlite3"
    store = Store(url)
    store.import_mnist(load_mnist())
    env = {**os.environ, "MNISTNET_DB_URL": url, "MNISTNET_SCHEDULER": cluster_by_address}
    sweep = subprocess.Popen([sys.executable, "-m", "mnistnet", "sweep", "--hidden", "64", "128",
                              "--lr", "0.05", "0.1", "--epochs", "6", "--train-size", "20000", "--json"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # a run that has finished an epoch: kill its worker
            running = [r for r in store.list_runs(statuses=("running",)) if store.run_epochs(r["id"])]
            if running:
                break
            assert sweep.poll() is None and time.monotonic() < deadline, "no run got going"
            time.sleep(0.1)
        victim = running[0]
        assert victim["scheduler"] == cluster_by_address
        os.kill(victim["pid"], signal.SIGKILL)
        out, err = sweep.communicate(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 1, err[-2000:]  # one run did not finish
    result = json.loads(out)
    statuses = {r["id"]: r["status"] for r in result["runs"]}
    assert len(statuses) == 4 and statuses[victim["id"]] == "interrupted"
    said = [(r["id"], r["status"], r["error"]) for r in result["runs"]]
    assert sorted(statuses.values()) == ["finished"] * 3 + ["interrupted"], said
    row = store.run(victim["id"])
    n = len(store.run_epochs(victim["id"]))
    assert row["error"] == f"the worker stopped during epoch {n + 1}; the model of epoch {n} is kept"
    assert row["model_id"] is not None
    assert "Traceback" not in err
