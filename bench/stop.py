"""Stop -> stopped on the embedded training cluster: a run that reads its stop flag (median and
worst of N), and a worker that ignores it (restarted after mnistnet.cluster.STOP_GRACE_S).

    .venv/bin/python bench/stop.py [--rounds 10] [--stubborn 3]

Times are measured from the store's flag being set to the run's row saying "stopped", with the
app's watchdog (Cluster.reconcile, once a second) running, as in the app.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])

from cluster_tasks import stubborn  # noqa: E402
from distributed import fire_and_forget  # noqa: E402

from mnistnet import TrainConfig, load_mnist  # noqa: E402
from mnistnet.cluster import Cluster, task_key  # noqa: E402
from mnistnet.store import Store  # noqa: E402

LONG = TrainConfig(epochs=50, train_size=20000, learning_rate=0.1).to_dict()


def until(store, run_id, statuses, timeout=120.0):
    deadline = time.monotonic() + timeout
    while store.run(run_id)["status"] not in statuses:
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run_id} did not reach {statuses}")
        time.sleep(0.01)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--stubborn", type=int, default=3)
    args = ap.parse_args()
    store = Store(f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3")
    store.import_mnist(load_mnist())
    cluster = Cluster(store, n_workers=2)
    while cluster.workers() < 2:
        time.sleep(0.05)
    watchdog = threading.Thread(target=lambda: [cluster.reconcile() or time.sleep(1.0) for _ in iter(int, 1)],
                                daemon=True)
    watchdog.start()

    def stop_time(submit) -> float:
        run_id = store.submit_run("bench", (784, 512, 256, 10), LONG, "app", scheduler=cluster.address)
        submit(run_id)
        until(store, run_id, ("running",))
        time.sleep(0.5)  # mid-batch, mid-epoch
        t = time.monotonic()
        store.request_stop(run_id, "bench")
        until(store, run_id, ("stopped",))
        return time.monotonic() - t

    coop = [stop_time(cluster.submit) for _ in range(args.rounds)]
    hard = [stop_time(lambda rid: fire_and_forget(cluster.client.submit(
        stubborn, store.url, rid, key=task_key(rid), pure=False))) for _ in range(args.stubborn)]
    print(f"run that reads its flag, {len(coop)} stops: median {statistics.median(coop):.3f} s, "
          f"worst {max(coop):.3f} s  ({', '.join(f'{t:.2f}' for t in coop)})")
    if hard:
        print(f"worker that ignores it,  {len(hard)} stops: median {statistics.median(hard):.3f} s, "
              f"worst {max(hard):.3f} s  ({', '.join(f'{t:.2f}' for t in hard)})")
    cluster.close()


if __name__ == "__main__":
    main()
