"""Epoch time of mnistnet against an identical PyTorch CPU network, alternated in one process.

Run by hand: `.venv/bin/python bench/speed.py [--rounds 5] [--threads 1] [--arch 784-256-128-10]`.
Both sides train the same network (same sizes, initial weights, scaled float32 inputs,
shuffles, mean-NLL loss, plain SGD at batch 50) for one epoch of 50,000 images, with no
evaluation inside the timed loop. PyTorch is a benchmark-only dependency (torch==2.13.0).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from mnistnet import MLP, TrainConfig, load_mnist
from mnistnet.metrics import evaluate_scaled
from mnistnet.train import Stepper

DEFAULT_ARCHS = ("784-128-64-10", "784-256-128-10")


def mnistnet_epoch(model: MLP, X: np.ndarray, y: np.ndarray, perm: np.ndarray, config: TrainConfig) -> float:
    """One SGD epoch over the rows perm: (m,) int64 of X: (n, 784) float32 scaled, y: (n,) int64.

    The same steps as `mnistnet.train._train` (gather, forward, loss, backward, update) without
    the progress and metrics bookkeeping. Returns the mean training loss.
    """
    n, bs = len(perm), config.batch_size
    stepper = Stepper(model, config, bs)
    xbuf = np.empty((bs, X.shape[1]), dtype=np.float32)
    lr = config.learning_rate
    bias_lr = config.bias_learning_rate or lr
    total = 0.0
    for b in range(0, n, bs):
        idx = perm[b:b + bs]
        xb = np.take(X, idx, axis=0, out=xbuf[:len(idx)])
        yb = y[idx]
        total += stepper.loss(xb, yb)
        stepper.update(yb, lr, bias_lr)
    return total / -(-n // bs)


def torch_net(model: MLP) -> torch.nn.Sequential:
    """nn.Linear + ReLU stack with mnistnet's initial weights (mnistnet W is (in, out): weight = W.T)."""
    layers: list[torch.nn.Module] = []
    for i, (W, b) in enumerate(zip(model.weights, model.biases)):
        lin = torch.nn.Linear(W.shape[0], W.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(model.weights) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_epoch(net: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, perm: torch.Tensor,
                config: TrainConfig) -> float:
    """One SGD epoch, the idiomatic PyTorch loop. X: (n, 784) float32, y, perm: (n,) int64."""
    opt = torch.optim.SGD(net.parameters(), lr=config.learning_rate)
    n, bs = len(perm), config.batch_size
    total = 0.0
    for b in range(0, n, bs):
        idx = perm[b:b + bs]
        loss = F.cross_entropy(net(X[idx]), y[idx])  # mean NLL of the softmax over the batch
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()  # mnistnet reads its loss every step too (finiteness check)
    return total / -(-n // bs)


def torch_accuracy(net: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(X).argmax(1) == y).double().mean())


def timed(fn, *args) -> tuple[float, float, float]:
    """Run fn(*args) -> (its result, wall seconds, process CPU seconds).

    CPU time is reported too because the machine may be shared: a preempted epoch gets
    a longer wall time but not a longer CPU time.
    """
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - w0, time.process_time() - c0


def sanity_check(model: MLP, net: torch.nn.Module, data) -> None:
    """Print both networks' test accuracy after the same epoch: they should agree within 0.5 points."""
    Xtest = model.scale_inputs(data.test.images)  # (10000, 784) float32
    acc_m = evaluate_scaled(model, Xtest, data.test.labels)["accuracy"]
    acc_t = torch_accuracy(net, torch.from_numpy(Xtest), torch.from_numpy(data.test.labels))
    ok = "OK" if abs(acc_m - acc_t) <= 0.005 else "MISMATCH"
    print(f"  sanity after 1 epoch: test accuracy mnistnet {acc_m:.2%}  torch {acc_t:.2%}  [{ok}]")


def bench_arch(sizes: tuple[int, ...], data, rounds: int, seed: int) -> tuple[float, float]:
    """Alternate one mnistnet and one torch epoch per round; print times.

    Returns the median mnistnet/torch ratio of wall times and of CPU times.
    """
    config = TrainConfig(batch_size=50, learning_rate=0.13)
    base = MLP(sizes, seed=seed)
    X = base.scale_inputs(data.train.images)  # (50000, 784) float32
    y = data.train.labels  # (50000,) int64
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)  # shared memory, no copies
    # Untimed warm-up of both sides (first-call costs: allocator, kernels, caches).
    warm = np.random.default_rng(seed).permutation(len(y))[:5000]
    mnistnet_epoch(MLP(sizes, seed=seed), X, y, warm, config)
    torch_epoch(torch_net(base), Xt, yt, torch.from_numpy(warm), config)
    wall_ratios, cpu_ratios, ours, theirs = [], [], [], []
    print(f"\n{'-'.join(map(str, sizes))}: one epoch of {len(y):,} images, batch {config.batch_size}")
    for r in range(rounds):
        model = MLP(sizes, seed=seed)
        net = torch_net(model)
        perm = np.random.default_rng(seed + r).permutation(len(y))
        runs = {"mnistnet": (mnistnet_epoch, model, X, y, perm, config),
                "torch": (torch_epoch, net, Xt, yt, torch.from_numpy(perm), config)}
        # mnistnet first on even rounds, torch first on odd ones: neither always runs warm.
        order = ("mnistnet", "torch") if r % 2 == 0 else ("torch", "mnistnet")
        res = {who: timed(*runs[who]) for who in order}
        (loss_m, wall_m, cpu_m), (loss_t, wall_t, cpu_t) = res["mnistnet"], res["torch"]
        ours.append(wall_m)
        theirs.append(wall_t)
        wall_ratios.append(wall_m / wall_t)
        cpu_ratios.append(cpu_m / cpu_t)
        print(f"  round {r + 1}: mnistnet {wall_m:.3f} s  torch {wall_t:.3f} s  ratio {wall_m / wall_t:.3f}"
              f"  | cpu {cpu_m:.3f} s vs {cpu_t:.3f} s  ratio {cpu_m / cpu_t:.3f}"
              f"  | train loss {loss_m:.4f} vs {loss_t:.4f}")
        if r == 0:
            sanity_check(model, net, data)
    wall, cpu = statistics.median(wall_ratios), statistics.median(cpu_ratios)
    print(f"  median: mnistnet {statistics.median(ours):.3f} s  torch {statistics.median(theirs):.3f} s  "
          f"median ratio {wall:.3f} (cpu-time ratio {cpu:.3f}); target <= 0.6")
    return wall, cpu


def load_average() -> str:
    """The 1-minute load average, or '?' where os.getloadavg is missing: other jobs skew wall times."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def parse_arch(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"arch must look like 784-256-128-10, got {text!r}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="alternated rounds per architecture (>= 1)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for numpy and torch")
    ap.add_argument("--arch", type=parse_arch, action="append",
                    help=f"layer sizes, repeatable (default: {' and '.join(DEFAULT_ARCHS)})")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.rounds < 1 or args.threads < 1:
        ap.error(f"--rounds and --threads must be >= 1, got {args.rounds}, {args.threads}")
    archs = args.arch or [parse_arch(a) for a in DEFAULT_ARCHS]
    torch.set_num_threads(args.threads)
    data = load_mnist()
    print(f"numpy {np.__version__}, torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.rounds} rounds, load average {load_average()}")
    with threadpool_limits(limits=args.threads):
        results = {"-".join(map(str, a)): bench_arch(a, data, args.rounds, args.seed) for a in archs}
    print(f"\nsummary, median mnistnet/torch epoch-time ratio (load average now {load_average()}):")
    for name, (wall, cpu) in results.items():
        print(f"  {name}: {wall:.3f} wall, {cpu:.3f} cpu  {'meets' if wall <= 0.6 else 'misses'} the 0.6 target")


if __name__ == "__main__":
    main()
