"""Stop -> stopped on the embedded training cluster: a preset's run stopped at a random moment
of its first epochs (median and worst of N, and how many workers were killed), and a worker that
ignores Stop (restarted after mnistnet.cluster.STOP_GRACE_S).

    .venv/bin/python bench/stop.py [--preset seed|best] [--rounds 10] [--stubborn 3]

Times are measured from Stop (the run's status set to stopping) to the run's row saying
"stopped", with the app's watchdog (Cluster.reconcile, once a second) running, as in the app.
"""

from __future__ import annotations

import argparse
import os
import random
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

from mnistnet import load_mnist, preset  # noqa: E402
from mnistnet.cluster import Cluster, task_key  # noqa: E402
from mnistnet.store import Store  # noqa: E402


def until(store, run_id, statuses, timeout=120.0):
    deadline = time.monotonic() + timeout
    while store.run(run_id)["status"] not in statuses:
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run_id} did not reach {statuses}")
        time.sleep(0.01)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="seed")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--stubborn", type=int, default=3)
    ap.add_argument("--within", type=float, default=8.0, help="stop this many seconds into the run at most")
    args = ap.parse_args()
    hidden, config = preset(args.preset)
    sizes, config = (784, *hidden, 10), config.to_dict()
    rng = random.Random(0)
    store = Store(f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3")
    store.import_mnist(load_mnist())
    cluster = Cluster(store, n_workers=2)
    while cluster.workers() < 2:
        time.sleep(0.05)
    watchdog = threading.Thread(target=lambda: [cluster.reconcile() or time.sleep(1.0) for _ in iter(int, 1)],
                                daemon=True)
    watchdog.start()

    killed = []

    def stop_time(submit) -> float:
        run_id = store.submit_run("bench", sizes, config, "app", scheduler=cluster.address)
        submit(run_id)
        until(store, run_id, ("running",))
        time.sleep(rng.uniform(0.2, args.within))  # anywhere in the first epochs, evaluations included
        t = time.monotonic()
        if store.request_stop(run_id, "bench") != "stopping":
            return stop_time(submit)  # it had ended already: another run, another moment
        until(store, run_id, ("stopped",))
        took = time.monotonic() - t
        killed.append("did not stop within" in (store.run(run_id)["error"] or ""))
        return took

    coop = [stop_time(cluster.submit) for _ in range(args.rounds)]
    coop_killed, killed[:] = sum(killed), []
    hard = [stop_time(lambda rid: fire_and_forget(cluster.client.submit(
        stubborn, store.url, rid, key=task_key(rid), pure=False))) for _ in range(args.stubborn)]
    print(f"preset {args.preset}, {len(coop)} stops: median {statistics.median(coop):.3f} s, "
          f"worst {max(coop):.3f} s, workers killed {coop_killed}  ({', '.join(f'{t:.2f}' for t in coop)})")
    if hard:
        print(f"worker that ignores it,  {len(hard)} stops: median {statistics.median(hard):.3f} s, "
              f"worst {max(hard):.3f} s  ({', '.join(f'{t:.2f}' for t in hard)})")
    cluster.close()


if __name__ == "__main__":
    main()
