"""The MLP's training speed here against another commit, alternated in fresh processes (run by hand).

    .venv/bin/python bench/mlp_ab.py                       # against 7533739^ (before the layers)
    .venv/bin/python bench/mlp_ab.py --rev HEAD~3 --rounds 8

Checks the other commit out into a temporary git worktree and, `--rounds` times, runs in each
tree one after the other (each in its own process, on one BLAS thread as the lab's workers):
- step: 1,000 SGD steps of 784-512-256-10 on one batch of 50 (Stepper.loss then update);
- epoch: `train()`'s SGD time for one epoch of the seed preset (the epoch's train_seconds), 2 epochs.
Prints the median and the minimum of each per tree. Alternating spreads the machine's drift over both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SNIPPET = r'''
import json, sys, time
sys.path.insert(0, ".")
import numpy as np
from threadpoolctl import threadpool_limits
from mnistnet import MLP, TrainConfig, load_mnist, train
from mnistnet.sgd import Stepper

rng = np.random.default_rng(0)
X = rng.standard_normal((50, 784)).astype(np.float32)
y = rng.integers(0, 10, 50)
steps, epochs = [], []
with threadpool_limits(1):
    stepper = Stepper(MLP((784, 512, 256, 10), seed=0), TrainConfig(), 50)
    for _ in range(2):
        t = time.perf_counter()
        for _ in range(1000):
            stepper.loss(X, y)
            stepper.update(y, 0.01, 0.01)
        steps.append(time.perf_counter() - t)
    data = load_mnist()
    for seed in range(2):
        hist = train(MLP((784, 512, 256, 10), seed=0), data, TrainConfig(epochs=1, seed=seed))
        epochs.append(hist.epochs[-1]["train_seconds"])
print(json.dumps({"step": steps, "epoch": epochs}))
'''


def measure(tree: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", SNIPPET], cwd=tree, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"the run in {tree} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", default="7533739^", help="the commit to compare with (default: before the layers)")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    if args.rounds < 1:
        p.error(f"--rounds must be >= 1, got {args.rounds}")
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(other), args.rev], check=True)
        try:
            trees = {args.rev: other, "this tree": ROOT}
            got = {name: {"step": [], "epoch": []} for name in trees}
            for r in range(args.rounds):
                for name, tree in trees.items():
                    for k, v in measure(tree).items():
                        got[name][k] += v
                print(f"round {r + 1}/{args.rounds} done", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False)
    for name, res in got.items():
        step, epoch = res["step"], res["epoch"]
        print(f"{name:>12}: 1,000 steps median {statistics.median(step):.3f} s (min {min(step):.3f}); "
              f"seed-preset epoch SGD median {statistics.median(epoch):.3f} s (min {min(epoch):.3f})")
    print(json.dumps({"rev": args.rev, "rounds": args.rounds, "results": got}))


if __name__ == "__main__":
    main()
