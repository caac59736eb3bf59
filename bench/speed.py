"""Epoch time of mnistnet against an identical PyTorch CPU network, alternated in one process.

Run by hand: `.venv/bin/python bench/speed.py [--rounds 5] [--threads 2] [--arch 784-512-256-10]`.
`--conv [--net LINE] [--batch N] [--json]` times a convolutional Net's training step instead
(bench/speed_conv.py: per batch against PyTorch on 1 and 2 threads, then where mnistnet's time goes).
Both sides train the same network (same sizes, initial weights, scaled float32 inputs,
shuffles, mean-NLL loss, plain SGD at batch 50) for one epoch of 50,000 images, timed two ways:
- loop: the SGD steps alone;
- whole: what a user's epoch costs: mnistnet's `train()` for one epoch, as the lab runs it
  (its set-up, the steps, then loss, accuracy, per-digit errors and the confusion matrix on
  train, val and test with the epoch's final weights), against PyTorch's loop followed by
  the same three evaluations.
Achieved GFLOP/s (multiply-adds x 2 of the products) is put beside a measured large-sgemm
rate on the same threads, and the whole epoch beside its floor: the same matrix products
alone (`products_floor`), with nothing else between them. PyTorch is a benchmark-only dependency (torch==2.13.0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
import speed_conv  # beside this file

from mnistnet import MLP, TrainConfig, blas, load_mnist, train
from mnistnet.network import random_stream
from mnistnet.sgd import Stepper

DEFAULT_ARCHS = ("784-128-64-10", "784-512-256-10")


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


def timed(fn, *args) -> tuple[float, float, float]:
    """Run fn(*args) -> (its result, wall seconds, process CPU seconds).

    CPU time is reported too because the machine may be shared: a preempted epoch gets
    a longer wall time but not a longer CPU time.
    """
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - w0, time.process_time() - c0


def torch_evaluate(net: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, chunk: int = 10000) -> dict:
    """Loss, accuracy, per-digit errors and confusion matrix of one split, as mnistnet.metrics gives them."""
    with torch.no_grad():
        nll, preds = 0.0, []
        for s in range(0, len(y), chunk):
            z = net(X[s:s + chunk])
            nll += float(F.cross_entropy(z, y[s:s + chunk], reduction="sum"))
            preds.append(z.argmax(1))
        cm = torch.bincount(y * 10 + torch.cat(preds), minlength=100).reshape(10, 10)
    correct = int(cm.trace())
    return {"loss": nll / len(y), "accuracy": correct / len(y), "correct": correct,
            "per_digit_errors": (cm.sum(1) - cm.diag()).tolist(), "confusion": cm.tolist()}


def torch_whole_epoch(net, splits, perm, config) -> list[dict]:
    """torch_epoch on splits[0], then torch_evaluate on each (train, val, test) split."""
    torch_epoch(net, *splits[0], perm, config)
    return [torch_evaluate(net, X, y) for X, y in splits]


def mnistnet_whole_epoch(model: MLP, data, config: TrainConfig):
    """One epoch exactly as the lab runs it: `train()` with its set-up and its three evaluations."""
    return train(model, data, replace(config, epochs=1))


def flops(sizes: tuple[int, ...], n_train: int, n_eval: int) -> tuple[float, float]:
    """(loop, evaluation) floating-point operations of one epoch: 2 per multiply-add of the products
    (forward, weight gradients, and the errors of every layer but the first)."""
    w = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2.0 * n_train * (2 * sum(w) + sum(w[1:])), 2.0 * n_eval * sum(w)


def sgemm_peak(repeats: int = 5, size: int = 2048) -> float:
    """GFLOP/s of numpy's best large float32 matrix product on the current BLAS threads."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    best = min(timed(np.matmul, a, a, out)[1] for _ in range(repeats))
    return 2.0 * size ** 3 / best / 1e9


def products_floor(sizes: tuple[int, ...], n_train: int, n_eval: int, batch: int,
                   chunk: int = 10000, repeats: int = 3) -> tuple[float, float]:
    """(loop, evaluation) seconds of one epoch's matrix products alone, best of `repeats`.

    The same products, shapes and count as `train()` runs (per batch: every layer's forward,
    every layer's weight gradient and the errors of every layer but the first; then the forward
    products of n_eval images in chunks), as bare float32 np.matmul calls into preallocated
    buffers: no bias, ReLU, softmax, loss or update. The floor a whole epoch is measured against.
    """
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal((a, b)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    gW = [np.empty_like(W) for W in Ws]
    acts = [rng.standard_normal((batch, s)).astype(np.float32) for s in sizes]  # (batch, size)
    chunks = [rng.standard_normal((chunk, s)).astype(np.float32) for s in sizes]  # (chunk, size)

    def loop() -> None:
        for _ in range(-(-n_train // batch)):
            for i, W in enumerate(Ws):
                np.matmul(acts[i], W, out=acts[i + 1])
            for i in range(len(Ws) - 1, -1, -1):
                np.matmul(acts[i].T, acts[i + 1], out=gW[i])
                if i:
                    np.matmul(acts[i + 1], Ws[i].T, out=acts[i])

    def evaluation() -> None:
        for start in range(0, n_eval, chunk):
            m = min(chunk, n_eval - start)
            for i, W in enumerate(Ws):
                np.matmul(chunks[i][:m], W, out=chunks[i + 1][:m])

    return (min(timed(loop)[1] for _ in range(repeats)), min(timed(evaluation)[1] for _ in range(repeats)))


def bench_arch(sizes: tuple[int, ...], data, rounds: int, seed: int) -> dict:
    """Alternate mnistnet and torch per round, loop alone and whole epoch; print times.

    Returns medians: loop and whole wall ratios, mnistnet's loop and whole seconds and GFLOP/s.
    """
    config = TrainConfig(batch_size=50, learning_rate=0.13, seed=seed)
    base = MLP(sizes, seed=seed)
    X = base.scale_inputs(data.train.images)  # (50000, 784) float32
    y = data.train.labels  # (50000,) int64
    splits = [(torch.from_numpy(base.scale_inputs(s.images)), torch.from_numpy(s.labels))
              for s in (data.train, data.val, data.test)]
    Xt, yt = splits[0]
    n_eval = sum(len(s.labels) for s in (data.train, data.val, data.test))
    loop_flops, eval_flops = flops(sizes, len(y), n_eval)
    # The permutation train() draws for this seed's first epoch: both sides see the same order.
    perm = random_stream(seed, "shuffle").permutation(len(y))
    # Untimed warm-up of both sides (first-call costs: allocator, kernels, caches, MNIST scaled).
    mnistnet_whole_epoch(MLP(sizes, seed=seed), data, replace(config, train_size=5000))
    torch_whole_epoch(torch_net(base), splits, torch.from_numpy(perm[:5000] % 5000), config)
    res = {k: [] for k in ("loop", "whole", "loop_t", "whole_t")}
    print(f"\n{'-'.join(map(str, sizes))}: one epoch of {len(y):,} images, batch {config.batch_size}; "
          f"evaluation of {n_eval:,}")
    for r in range(rounds):
        runs = {"loop": (mnistnet_epoch, MLP(sizes, seed=seed), X, y, perm, config),
                "loop_t": (torch_epoch, torch_net(base), Xt, yt, torch.from_numpy(perm), config),
                "whole": (mnistnet_whole_epoch, MLP(sizes, seed=seed), data, config),
                "whole_t": (torch_whole_epoch, torch_net(base), splits, torch.from_numpy(perm), config)}
        # mnistnet first on even rounds, torch first on odd ones: neither always runs warm.
        order = ("loop", "loop_t", "whole", "whole_t") if r % 2 == 0 else ("loop_t", "loop", "whole_t", "whole")
        out = {}
        for who in order:
            out[who], wall, _ = timed(*runs[who])
            res[who].append(wall)
        print(f"  round {r + 1}: loop {res['loop'][-1]:.3f} s vs torch {res['loop_t'][-1]:.3f} s "
              f"({res['loop'][-1] / res['loop_t'][-1]:.3f})  |  whole epoch {res['whole'][-1]:.3f} s vs torch "
              f"{res['whole_t'][-1]:.3f} s ({res['whole'][-1] / res['whole_t'][-1]:.3f})")
        if r == 0:
            ours, theirs = out["whole"].epochs[-1]["test"]["accuracy"], out["whole_t"][2]["accuracy"]
            ok = "OK" if abs(ours - theirs) <= 0.005 else "MISMATCH"
            print(f"  sanity after 1 epoch: test accuracy mnistnet {ours:.2%}  torch {theirs:.2%}  [{ok}]")
    med = {k: statistics.median(v) for k, v in res.items()}
    floor_loop, floor_eval = products_floor(sizes, len(y), n_eval, config.batch_size)
    summary = {"loop_ratio": statistics.median(a / b for a, b in zip(res["loop"], res["loop_t"])),
               "whole_ratio": statistics.median(a / b for a, b in zip(res["whole"], res["whole_t"])),
               "loop_s": med["loop"], "whole_s": med["whole"], "loop_gflops": loop_flops / med["loop"] / 1e9,
               "whole_gflops": (loop_flops + eval_flops) / med["whole"] / 1e9,
               "torch_loop_s": med["loop_t"], "torch_whole_s": med["whole_t"],
               "floor_loop_s": floor_loop, "floor_eval_s": floor_eval,
               "whole_over_floor": med["whole"] / (floor_loop + floor_eval),
               "floor_over_torch": (floor_loop + floor_eval) / med["whole_t"]}
    print(f"  median: loop {med['loop']:.3f} s vs {med['loop_t']:.3f} s, ratio {summary['loop_ratio']:.3f}; "
          f"whole {med['whole']:.3f} s vs {med['whole_t']:.3f} s, ratio {summary['whole_ratio']:.3f}; "
          f"mnistnet {summary['loop_gflops']:.0f} GFLOP/s in the loop, {summary['whole_gflops']:.0f} whole")
    print(f"  floor (the same products alone): loop {floor_loop:.3f} s + evaluation {floor_eval:.3f} s = "
          f"{floor_loop + floor_eval:.3f} s, {(floor_loop + floor_eval) / med['whole_t']:.3f}x torch's whole epoch; "
          f"mnistnet's whole epoch is {summary['whole_over_floor']:.2f}x the floor")
    return summary


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
    ap.add_argument("--rounds", type=int, help="alternated rounds per architecture (>= 1; default 5), "
                    "with --conv alternated blocks of --block steps per side (default 10)")
    ap.add_argument("--threads", type=int, help="BLAS threads for numpy and torch (default 2; "
                    "with --conv 1 and then 2)")
    ap.add_argument("--arch", type=parse_arch, action="append",
                    help=f"layer sizes, repeatable (default: {' and '.join(DEFAULT_ARCHS)})")
    ap.add_argument("--seed", type=int, default=0)
    conv = ap.add_argument_group("--conv: a convolutional Net's step per batch")
    conv.add_argument("--conv", action="store_true", help="time a convolutional Net instead of the MLPs")
    conv.add_argument("--net", help="the network's line (default: PRESETS['cnn']'s, else "
                      f"'{speed_conv.FALLBACK_LINE}')")
    conv.add_argument("--batch", type=int, help="batch size (default: the preset's, else 128)")
    conv.add_argument("--block", type=int, default=20, help="timed steps per side per round (default 20)")
    conv.add_argument("--warmup", type=int, default=20, help="untimed steps per side first (default 20)")
    conv.add_argument("--reps", type=int, default=20, help="repetitions of each piece timed alone (default 20)")
    conv.add_argument("--json", action="store_true", help="print the results as one JSON line at the end")
    args = ap.parse_args()
    if args.conv:
        return main_conv(ap, args)
    rounds, threads = args.rounds or 5, args.threads or 2
    if rounds < 1 or threads < 1:
        ap.error(f"--rounds and --threads must be >= 1, got {rounds}, {threads}")
    archs = args.arch or [parse_arch(a) for a in DEFAULT_ARCHS]
    torch.set_num_threads(threads)
    data = load_mnist()
    print(f"numpy {np.__version__}, torch {torch.__version__}, {threads} thread(s), "
          f"{rounds} rounds, load average {load_average()}, fused sgemm update: {blas.AVAILABLE}")
    with threadpool_limits(limits=threads):
        peak = sgemm_peak()
        print(f"large sgemm (2048^3, float32): {peak:.0f} GFLOP/s")
        results = {"-".join(map(str, a)): bench_arch(a, data, rounds, args.seed) for a in archs}
    print(f"\nsummary (load average now {load_average()}); sgemm peak {peak:.0f} GFLOP/s:")
    for name, r in results.items():
        print(f"  {name}: loop {r['loop_ratio']:.3f}x torch ({r['loop_gflops']:.0f} GFLOP/s, "
              f"{r['loop_gflops'] / peak:.0%} of peak); whole epoch {r['whole_ratio']:.3f}x torch "
              f"({r['whole_s']:.2f} s vs {r['torch_whole_s']:.2f} s; {r['whole_gflops']:.0f} GFLOP/s), "
              f"{r['whole_over_floor']:.2f}x the products' floor ({r['floor_over_torch']:.3f}x torch)")
    print(json.dumps({"threads": threads, "sgemm_peak_gflops": peak, "archs": results}))


def main_conv(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--conv: the convolutional Net's step against PyTorch's (bench/speed_conv.py)."""
    line, config, source = speed_conv.cnn_preset()
    if args.net:
        line, source = args.net, "--net"
    if args.batch is not None:
        config = replace(config, batch_size=args.batch)  # TrainConfig checks the range
    rounds = args.rounds or 10
    if min(rounds, args.block, args.reps) < 1 or args.warmup < 0 or (args.threads or 1) < 1:
        ap.error(f"--rounds, --block, --reps, --threads must be >= 1 and --warmup >= 0, got {rounds}, "
                 f"{args.block}, {args.reps}, {args.threads}, {args.warmup}")
    threads = [args.threads] if args.threads else [1, 2]
    data = load_mnist()
    print(f"numpy {np.__version__}, torch {torch.__version__}, load average {load_average()}, "
          f"{rounds} rounds x {args.block} steps per side after {args.warmup} warm-up steps")
    result = speed_conv.run(line, config, source, data, threads, args.seed, args.warmup, rounds, args.block,
                            args.reps)
    print(f"\nload average now {load_average()}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
