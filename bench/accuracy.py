"""Test accuracy of a preset over several seeds: mean, min and max (run by hand).

    .venv/bin/python bench/accuracy.py                      # seed preset, seeds 0 1 2
    .venv/bin/python bench/accuracy.py --preset best --seeds 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from threadpoolctl import threadpool_limits  # noqa: E402

from mnistnet import MLP, load_mnist, preset, train  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--hidden", help="override the preset's hidden sizes, e.g. 512,256")
    p.add_argument("--epochs", type=int)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (1 is robust on a shared machine)")
    args = p.parse_args()
    hidden, config = preset(args.preset)
    if args.hidden:
        hidden = tuple(int(s) for s in args.hidden.split(","))
    if args.epochs:
        config = replace(config, epochs=args.epochs)
    data = load_mnist()
    rows = []
    with threadpool_limits(args.threads):
        for seed in args.seeds:
            model = MLP((784, *hidden, 10), seed=seed)
            t0 = time.perf_counter()
            hist = train(model, data, replace(config, seed=seed))
            wall = time.perf_counter() - t0
            test = hist.epochs[-1]["test"]
            row = {"seed": seed, "test_accuracy": test["accuracy"], "test_correct": test["correct"],
                   "train_seconds": sum(e["train_seconds"] for e in hist.epochs), "wall_seconds": wall}
            rows.append(row)
            print(f"seed {seed}: {test['correct']:,}/{test['total']:,} = {test['accuracy'] * 100:.2f}%  "
                  f"SGD {row['train_seconds']:.1f} s, with evaluation {wall:.1f} s", flush=True)
    accs = [r["test_accuracy"] for r in rows]
    summary = {"preset": args.preset, "layer_sizes": [784, *hidden, 10], "config": replace(config).to_dict(),
               "threads": args.threads, "mean": statistics.mean(accs), "min": min(accs), "max": max(accs),
               "runs": rows}
    print(f"{args.preset} {'-'.join(map(str, summary['layer_sizes']))}: mean {summary['mean'] * 100:.2f}%, "
          f"min {summary['min'] * 100:.2f}%, max {summary['max'] * 100:.2f}% over seeds {args.seeds}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
