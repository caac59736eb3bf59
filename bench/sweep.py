"""Training through the Dask cluster against bare train(): one run, submit -> first progress, and
an 8-run sweep of the seed preset (parallel efficiency), on the embedded cluster and on a
scheduler and two workers started by address.

    .venv/bin/python bench/sweep.py [--runs 8] [--skip-address]

Parallel efficiency = (runs x one bare run's time / workers) / the sweep's wall time. Every run
has one BLAS thread, as in the app. Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from threadpoolctl import threadpool_limits  # noqa: E402

from mnistnet import MLP, load_mnist, preset, train  # noqa: E402
from mnistnet.cluster import DASK_ENV, Cluster, follow_sweep  # noqa: E402
from mnistnet.store import Store  # noqa: E402
from mnistnet.sweep import SweepSpec  # noqa: E402


def bare_run(data) -> float:
    hidden, config = preset("seed")
    with threadpool_limits(limits=1, user_api="blas"):
        t = time.perf_counter()
        train(MLP((784, *hidden, 10), seed=0), data, config)
        return time.perf_counter() - t


def one_run(cluster: Cluster, store: Store) -> tuple[float, float]:
    """-> (submit -> first progress row, the run's time on its worker)."""
    hidden, config = preset("seed")
    run_id = store.submit_run("bench", (784, *hidden, 10), config.to_dict(), "app", scheduler=cluster.address)
    t = time.perf_counter()
    cluster.submit(run_id)
    while store.run(run_id)["progress"] is None:
        time.sleep(0.005)
    first = time.perf_counter() - t
    while (row := store.run(run_id))["status"] in ("queued", "running"):
        time.sleep(0.05)
    return first, row["ended_at"] - row["running_at"]


def sweep(cluster: Cluster, runs: int) -> float:
    spec = SweepSpec(hidden=((512, 256),), seed=tuple(range(runs)))
    sweep_id = cluster.submit_sweep("bench", spec)
    rows, seconds = follow_sweep(cluster, sweep_id, poll_s=1.0)  # as the app watches: once a second
    assert all(r["status"] == "finished" for r in rows), [r["status"] for r in rows]
    return seconds


def by_address(folder: str, n_workers: int = 2):
    env = {**os.environ, **DASK_ENV}
    sched_file = os.path.join(folder, "scheduler.json")
    log = open(os.path.join(folder, "dask.log"), "w")  # noqa: SIM115 (lives with the processes)
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", sched_file],
                              env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)]
    while not os.path.exists(sched_file):
        time.sleep(0.05)
    time.sleep(0.2)
    address = json.loads(Path(sched_file).read_text())["address"]
    procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                "--nworkers", "1", "--no-dashboard"], env=env, cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True) for _ in range(n_workers)]
    return address, procs


def warm(cluster: Cluster, store: Store, n: int) -> None:
    while cluster.workers() < n:
        time.sleep(0.05)
    sweep(cluster, n)  # every worker loads MNIST once


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--skip-address", action="store_true")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="mnistnet-bench-")
    store = Store(f"sqlite:///{folder}/bench.sqlite3")
    data = load_mnist()
    store.import_mnist(data)
    data = store.load_mnist()
    bare = [bare_run(data) for _ in range(3)]
    one = statistics.median(bare)
    print(f"bare train(), seed preset, 1 BLAS thread: {', '.join(f'{b:.2f}' for b in bare)} s (median {one:.2f} s)")

    cluster = Cluster(store, n_workers=2)
    warm(cluster, store, 2)
    singles = [one_run(cluster, store) for _ in range(3)]
    first = statistics.median(s[0] for s in singles)
    through = statistics.median(s[1] for s in singles)
    print(f"one run through the embedded cluster: {through:.2f} s on its worker = {through / one:.3f}x bare; "
          f"submit -> first progress {first:.3f} s (runs: {', '.join(f'{s[1]:.2f}' for s in singles)})")
    wall = sweep(cluster, args.runs)
    ideal = args.runs * one / 2
    print(f"{args.runs}-run sweep, embedded cluster, 2 workers: {wall:.1f} s; ideal {ideal:.1f} s; "
          f"parallel efficiency {ideal / wall:.2f}")
    cluster.close()

    if not args.skip_address:
        address, procs = by_address(folder)
        try:
            far = Cluster(store, address)
            warm(far, store, 2)
            wall = sweep(far, args.runs)
            print(f"{args.runs}-run sweep, scheduler by address ({address}), 2 workers: {wall:.1f} s; "
                  f"parallel efficiency {ideal / wall:.2f}")
            far.close()
        finally:
            for p in procs:  # each with its own process group: the nanny's worker goes too
                os.killpg(p.pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
