"""Test accuracy of a preset over several seeds: mean, min and max (run by hand).

    .venv/bin/python bench/accuracy.py                      # seed preset, seeds 0 1 2
    .venv/bin/python bench/accuracy.py --preset best --seeds 0
    .venv/bin/python bench/accuracy.py --preset cnn --data fashion --threads 2
    .venv/bin/python bench/accuracy.py --net "conv 32x5 - pool - dense 256" --epochs 8
    .venv/bin/python bench/accuracy.py --preset cnn --set rotate_degrees=0 --set momentum=0.95
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

from mnistnet import preset, train  # noqa: E402
from mnistnet.data import DATASETS, load_dataset  # noqa: E402
from mnistnet.net import describe, model_for  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--hidden", help="override the preset's hidden sizes, e.g. 512,256")
    p.add_argument("--net", help="override the preset's network with a line, e.g. 'conv 16x5 - pool - dense 64'")
    p.add_argument("--data", choices=sorted(DATASETS), help="the data set (default: the preset's)")
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any TrainConfig field, e.g. rotate_degrees=0 (repeatable)")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (1 is robust on a shared machine)")
    args = p.parse_args()
    arch, config = preset(args.preset, args.data or "mnist")
    if args.hidden:
        arch = tuple(int(s) for s in args.hidden.split(","))
    if args.net:
        arch = args.net
    overrides = {k: v for k, v in (("epochs", args.epochs), ("dataset", args.data), ("learning_rate", args.lr),
                                   ("batch_size", args.batch_size)) if v is not None}
    for item in args.set:
        name, _, value = item.partition("=")
        try:
            overrides[name] = json.loads(value)  # numbers, true/false, null
        except json.JSONDecodeError:
            overrides[name] = value  # a word such as "cosine"
    config = replace(config, **overrides)
    data = load_dataset(config.dataset)
    rows = []
    with threadpool_limits(args.threads):
        for seed in args.seeds:
            model = model_for(arch, seed=seed)
            t0 = time.perf_counter()
            hist = train(model, data, replace(config, seed=seed))
            wall = time.perf_counter() - t0
            test = hist.epochs[-1]["test"]
            row = {"seed": seed, "test_accuracy": test["accuracy"], "test_correct": test["correct"],
                   "train_seconds": sum(e["train_seconds"] for e in hist.epochs), "wall_seconds": wall}
            rows.append(row)
            print(f"seed {seed}: {test['correct']:,}/{test['total']:,} = {test['accuracy'] * 100:.2f}%  "
                  f"SGD {row['train_seconds']:.1f} s, with evaluation {wall:.1f} s", flush=True)
            print("  by epoch, train / test %: " + ", ".join(
                f"{e['train']['accuracy'] * 100:.2f}/{e['test']['accuracy'] * 100:.2f}" for e in hist.epochs))
    accs = [r["test_accuracy"] for r in rows]
    summary = {"preset": args.preset, "network": describe(model), "data": config.dataset,
               "config": config.to_dict(), "threads": args.threads, "mean": statistics.mean(accs),
               "min": min(accs), "max": max(accs), "runs": rows}
    print(f"{args.preset} {summary['network']} on {config.dataset}: mean {summary['mean'] * 100:.2f}%, "
          f"min {summary['min'] * 100:.2f}%, max {summary['max'] * 100:.2f}% over seeds {args.seeds}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
