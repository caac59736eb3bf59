"""Store timings (run by hand): load 70,000 samples into NumPy; record one epoch's metrics.

    .venv/bin/python bench/store.py            # a fresh SQLite file in a temporary folder
    .venv/bin/python bench/store.py --url sqlite:////path/to/mnistnet.sqlite3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnistnet import MLP, TrainConfig, load_mnist, train  # noqa: E402
from mnistnet.data import MNIST, Split  # noqa: E402
from mnistnet.store import Store  # noqa: E402


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    store = Store(url)
    t0 = time.perf_counter()
    added = store.import_mnist(load_mnist())
    print(f"import: {added:,} samples in {time.perf_counter() - t0:.2f} s (once per store)")
    loads = timed(store.load_mnist, args.repeat)
    print(f"load 70,000 samples: median {statistics.median(loads):.3f} s, min {min(loads):.3f} s "
          f"over {args.repeat} runs")
    data = store.load_mnist()
    tiny = MNIST(Split(data.train.images[:500], data.train.labels[:500]), data.val, data.test)
    record = train(MLP((784, 16, 10)), tiny, TrainConfig(epochs=1)).epochs[-1]
    run_id = store.start_run([784, 16, 10], TrainConfig().to_dict(), "bench")
    epochs = iter(range(1, 10_000))
    writes = timed(lambda: store.add_epoch(run_id, {**record, "epoch": next(epochs)}), 20)
    print(f"record one epoch's metrics: median {statistics.median(writes) * 1000:.1f} ms over 20 writes")
    store.delete_run(run_id)


if __name__ == "__main__":
    main()
