"""A convolutional Net's training step against the same PyTorch network, and where mnistnet's time goes.

Run through `bench/speed.py --conv` (see there); imports numpy, torch, threadpoolctl and mnistnet.
One step is what `mnistnet.train._train` does per batch (gather the batch, forward, loss, backward
with the fused SGD update) and, for PyTorch, the idiomatic loop (index, forward, cross-entropy,
zero_grad, backward, optimiser step, loss.item()). Both start from the same weights, see the same
batches of real MNIST images (scaled float32, no augmentation: that is not the step's cost) and
use the same momentum, weight decay and bias learning rate; a constant learning rate (a schedule
only changes a scalar). The equivalence is checked (two steps, then the weights) before timing.
The second table times each mnistnet layer inside real steps, then the pieces of each Conv2D (im2col
copy, sgemms, bias, update, col2im) one by one on its real buffers: that copy mirrors Conv2D's code
(mnistnet.layers) and its sum is printed beside the layer's own time, so a drift between them shows.
Rows starting with spaces are not added to that sum: parts of the row above, or a sequence of two
(im2col then sgemm: where it takes much longer than the two alone, OpenBLAS's threads are waking up
between numpy's calls, which is where a step on 2 threads loses its time on a 2-core machine).
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

from mnistnet import PRESETS, TrainConfig
from mnistnet.blas import gemm
from mnistnet.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2, ReLU, Tanh
from mnistnet.net import Net
from mnistnet.network import random_stream
from mnistnet.sgd import Stepper

FALLBACK_LINE = "conv 16x5 - pool - conv 32x5 - pool - dense 128"
FALLBACK_CONFIG = TrainConfig(batch_size=128, learning_rate=0.05, momentum=0.9)
GOAL = 1.5  # the issue's target: mnistnet's step at most 1.5x PyTorch's


def cnn_preset() -> tuple[str, TrainConfig, str]:
    """(line, config, where they come from): PRESETS["cnn"] when it exists and names a line,
    else FALLBACK_LINE and FALLBACK_CONFIG (batch 128, momentum 0.9)."""
    entry = PRESETS.get("cnn")
    if entry is not None and isinstance(entry[0], str):
        return entry[0], entry[1], 'PRESETS["cnn"]'
    return FALLBACK_LINE, FALLBACK_CONFIG, "fallback (no cnn preset)"


# --- the PyTorch twin ---------------------------------------------------------------------------


def torch_params(net: Net) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each conv and dense layer's (weight, bias) in PyTorch's layout, copied from the Net.

    Conv2D W: (k*k*C, F), rows in (i, j, c) order -> (F, C, k, k). The first Dense after a
    Flatten of (H, W, C) images reads NHWC order; torch flattens NCHW: its rows are permuted
    so both compute the same function. Other Dense W: (in, out) -> (out, in).
    """
    out, flat_shape = [], None
    for layer in net.template:
        if isinstance(layer, Flatten) and len(layer.in_shape) == 3:
            flat_shape = layer.in_shape
        if not isinstance(layer, (Conv2D, Dense)):
            continue
        W, b = net.weights[layer.index], net.biases[layer.index]
        if isinstance(layer, Conv2D):
            C, k = layer.in_shape[2], layer.k
            w = W.reshape(k, k, C, layer.filters).transpose(3, 2, 0, 1)
        elif flat_shape is not None:
            H, Wd, C = flat_shape
            w = W.reshape(H, Wd, C, -1).transpose(3, 2, 0, 1).reshape(W.shape[1], -1)
            flat_shape = None
        else:
            w = W.T
        out.append((np.ascontiguousarray(w), b.copy()))
    return out


def torch_cnn(net: Net) -> torch.nn.Sequential:
    """The Net's layers as a torch Sequential on (n, 1, 28, 28) float32 input, with its weights."""
    mods: list[torch.nn.Module] = []
    for layer in net.template:
        if isinstance(layer, Conv2D):
            mods.append(torch.nn.Conv2d(layer.in_shape[2], layer.filters, layer.k, padding=layer.pad))
        elif isinstance(layer, Dense):
            mods.append(torch.nn.Linear(layer.fan_in, layer.fan_out))
        elif isinstance(layer, MaxPool2):
            mods.append(torch.nn.MaxPool2d(2))  # floor mode drops an odd edge, as MaxPool2 does
        elif isinstance(layer, Flatten):
            mods.append(torch.nn.Flatten())
        elif isinstance(layer, Dropout):
            mods.append(torch.nn.Dropout(layer.p))
        else:
            mods.append({ReLU: torch.nn.ReLU, Tanh: torch.nn.Tanh}[type(layer)]())
    model = torch.nn.Sequential(*mods)
    set_torch_params(model, torch_params(net))
    return model


def set_torch_params(model: torch.nn.Module, params) -> None:
    layers = [m for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for m, (w, b) in zip(layers, params, strict=True):
            m.weight.copy_(torch.from_numpy(w))
            m.bias.copy_(torch.from_numpy(b))


def torch_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD as mnistnet.sgd.SGD: momentum, weight decay on weights only, the bias learning rate."""
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    return torch.optim.SGD([{"params": weights, "weight_decay": config.weight_decay},
                            {"params": biases, "weight_decay": 0.0,
                             "lr": config.bias_learning_rate or config.learning_rate}],
                           lr=config.learning_rate, momentum=config.momentum)


def torch_step(model, opt, Xt: torch.Tensor, yt: torch.Tensor, idx: torch.Tensor) -> float:
    """One step of the idiomatic loop. Xt: (n, 1, 28, 28) float32, yt, idx: int64."""
    loss = F.cross_entropy(model(Xt[idx]), yt[idx])  # mean NLL of the softmax over the batch
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()  # mnistnet reads its loss every step too (the finiteness check)


def mnistnet_step(stepper: Stepper, X: np.ndarray, y: np.ndarray, idx: np.ndarray, xbuf: np.ndarray,
                  lr: float, bias_lr: float) -> float:
    """One step as mnistnet.train._train does it. X: (n, 784) float32 scaled, xbuf: (batch, 784)."""
    xb = np.take(X, idx, axis=0, out=xbuf[:len(idx)])
    yb = y[idx]
    loss = stepper.loss(xb, yb)
    stepper.update(yb, lr, bias_lr)
    return loss


class Side:
    """One contender's state for a run of steps: its model, optimiser and a callable step(idx)."""

    def __init__(self, which: str, line: str, config: TrainConfig, X, y, Xt, yt, seed: int):
        net = Net(line, seed=seed)
        lr, bias_lr = config.learning_rate, config.bias_learning_rate or config.learning_rate
        if which == "mnistnet":
            self.net, self.stepper = net, Stepper(net, config, config.batch_size)
            xbuf = np.empty((config.batch_size, 784), np.float32)
            self.step = lambda idx: mnistnet_step(self.stepper, X, y, idx, xbuf, lr, bias_lr)
        else:
            self.model = torch_cnn(net)
            self.opt = torch_optimizer(self.model, config)
            self.model.train()
            self.step = lambda idx: torch_step(self.model, self.opt, Xt, yt, torch.from_numpy(idx))


# --- equivalence and timing ---------------------------------------------------------------------


def check_same(line: str, config: TrainConfig, data, seed: int) -> dict:
    """Two steps on both sides from the same weights: losses and the weights after, compared."""
    X, y, Xt, yt = data
    net_side = Side("mnistnet", line, config, X, y, Xt, yt, seed)
    if any(isinstance(la, Dropout) and la.p > 0 for la in net_side.net.template):
        return {"ok": None, "why": "dropout draws differ between the two"}
    torch_side = Side("torch", line, config, X, y, Xt, yt, seed)
    bs = config.batch_size
    losses = [(net_side.step(np.arange(i * bs, (i + 1) * bs)), torch_side.step(np.arange(i * bs, (i + 1) * bs)))
              for i in range(2)]
    ours = torch_params(net_side.net)
    theirs = [m for m in torch_side.model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    diff = max(max(float(np.abs(w - m.weight.detach().numpy()).max()) / float(np.abs(w).max()),
                   float(np.abs(b - m.bias.detach().numpy()).max()) / max(float(np.abs(b).max()), 1e-6))
               for (w, b), m in zip(ours, theirs))
    loss_diff = max(abs(a - b) / abs(b) for a, b in losses)
    return {"ok": diff < 1e-3 and loss_diff < 1e-4, "max_rel_param_diff": diff, "max_rel_loss_diff": loss_diff,
            "losses": losses}


def batch_order(n: int, bs: int, count: int, seed: int) -> list[np.ndarray]:
    """`count` batches of row indices, through shuffled epochs (as train draws them)."""
    rng = random_stream(seed, "shuffle")
    out, perm = [], np.empty(0, np.int64)
    while len(out) < count:
        if len(perm) < bs:
            perm = rng.permutation(n)
        out.append(perm[:bs])
        perm = perm[bs:]
    return out


def time_sides(line, config, data, seed: int, warmup: int, rounds: int, block: int) -> dict[str, list[float]]:
    """Seconds per step of each side: `warmup` untimed steps each, then `rounds` blocks of `block`
    timed steps, the sides alternating block by block (who goes first alternates too)."""
    X, y, Xt, yt = data
    sides = {w: Side(w, line, config, X, y, Xt, yt, seed) for w in ("mnistnet", "torch")}
    batches = batch_order(len(y), config.batch_size, warmup + rounds * block, seed)
    for side in sides.values():
        for idx in batches[:warmup]:
            side.step(idx)
    times: dict[str, list[float]] = {w: [] for w in sides}
    for r in range(rounds):
        chunk = batches[warmup + r * block:warmup + (r + 1) * block]
        for who in (("mnistnet", "torch") if r % 2 == 0 else ("torch", "mnistnet")):
            step = sides[who].step
            for idx in chunk:
                t0 = time.perf_counter()
                step(idx)
                times[who].append(time.perf_counter() - t0)
    return times


# --- where mnistnet's time goes -----------------------------------------------------------------


SHORT = {Conv2D: "conv", ReLU: "relu", Tanh: "tanh", MaxPool2: "pool", Dense: "dense", Flatten: "flatten",
         Dropout: "dropout"}


def layer_names(layers) -> list[str]:
    """Names for the tables, numbered per kind: conv1 16x5, relu1, pool1, ..., dense2 10."""
    names, count = [], defaultdict(int)
    for layer in layers:
        kind = SHORT.get(type(layer), type(layer).__name__)
        count[kind] += 1
        size = f" {layer.filters}x{layer.k}" if isinstance(layer, Conv2D) else \
            f" {layer.units}" if isinstance(layer, Dense) else ""
        names.append(f"{kind}{count[kind]}{size}")
    return names


def layer_breakdown(side: Side, batches: list[np.ndarray]) -> tuple[dict, float, dict]:
    """Median ms of each layer's forward and backward inside real steps over `batches`, the median
    whole step, and one more step's input and output error of every layer (copies, taken in an
    untimed step so the copies do not disturb the timed ones) for `piece_breakdown`.

    The layers' forward/backward are wrapped per instance for the duration, then restored.
    """
    layers = side.stepper.bp.layers
    names = layer_names(layers)
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    captured: dict[str, dict] = defaultdict(dict)
    capture = False

    def wrap(layer, name, kind):
        real = getattr(layer, kind)

        def timed_call(h, arg):
            if capture:
                captured[name][kind] = h.copy()
            t0 = time.perf_counter()
            out = real(h, arg)
            times[name, kind].append(time.perf_counter() - t0)
            return out
        return timed_call

    for layer, name in zip(layers, names):
        layer.forward, layer.backward = wrap(layer, name, "forward"), wrap(layer, name, "backward")
    steps = []
    try:
        for idx in batches:
            t0 = time.perf_counter()
            side.step(idx)
            steps.append(time.perf_counter() - t0)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        capture = True
        side.step(batches[0])
    finally:
        for layer in layers:
            del layer.forward, layer.backward  # the class's methods again
    return med, statistics.median(steps) * 1e3, captured


def median_ms(fn, reps: int) -> float:
    """Median wall ms of fn() over `reps` calls after one untimed call."""
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def conv_pieces(layer: Conv2D, x: np.ndarray, dy: np.ndarray, side: Side, reps: int) -> dict[str, float]:
    """Conv2D.forward and .backward cut into pieces: the layer's own im2col and col2im on its
    buffers, its sgemms, and the real SGD.layer (parameters and velocity put back afterwards)."""
    n = len(x)
    Ho, Wo, Fo = layer.out_shape
    rows = n * Ho * Wo
    cols, y = layer.cols[:rows], layer.y[:n]
    d2d = dy.reshape(rows, Fo)
    sgd = side.stepper.sgd
    vw, gb = np.zeros_like(layer.W), np.empty_like(layer.b)

    def fwd_sgemm():
        np.matmul(cols, layer.W, out=y.reshape(rows, Fo))

    out = {"fwd im2col copy": median_ms(lambda: layer.im2col(x), reps),
           "fwd sgemm cols @ W": median_ms(fwd_sgemm, reps),
           # Back to back, BLAS's worker threads never sleep; after numpy's copy they may have to wake.
           "  im2col, then sgemm at once": median_ms(lambda: (layer.im2col(x), fwd_sgemm()), reps),
           "fwd bias add": median_ms(lambda: np.add(y, layer.b, out=y), reps)}
    if layer.need_dx:
        out["bwd sgemm dy @ W.T"] = median_ms(lambda: np.matmul(d2d, layer.W.T, out=layer.dcols[:rows]), reps)
    saved = ([a.copy() for a in sgd.velocity] if sgd.velocity else None, layer.W.copy(), layer.b.copy())
    out["bwd SGD.layer (whole update)"] = median_ms(lambda: sgd.layer(layer.index, cols, d2d), reps)
    if saved[0] is not None:
        for v, s in zip(sgd.velocity, saved[0]):
            v[...] = s
    layer.W[...], layer.b[...] = saved[1], saved[2]
    out["  of it: sgemm cols.T @ dy"] = median_ms(lambda: gemm(1.0, cols, d2d, sgd.momentum, vw, trans_a=True),
                                                 reps)
    out["  of it: bias sum over rows"] = median_ms(lambda: sgd.bias_sum(d2d, gb), reps)
    if layer.need_dx:
        out["bwd col2im (runs of k*C)"] = median_ms(lambda: layer.col2im(layer.dcols[:rows]), reps)
    return out


def piece_breakdown(side: Side, captured: dict, reps: int) -> dict[str, dict[str, float]]:
    """{conv layer name: {piece: median ms}}; {name: {}} where Conv2D no longer has the buffers
    this copy of its code uses (the layer changed: update conv_pieces)."""
    layers = side.stepper.bp.layers
    out = {}
    for layer, name in zip(layers, layer_names(layers)):
        got = captured.get(name, {})
        if isinstance(layer, Conv2D) and "forward" in got and "backward" in got:
            try:
                out[name] = conv_pieces(layer, got["forward"], got["backward"], side, reps)
            except (AttributeError, ValueError) as e:
                print(f"  {name}: pieces not timed, Conv2D differs from conv_pieces' copy ({e})")
                out[name] = {}
    return out


# --- the run ------------------------------------------------------------------------------------


def run(line: str, config: TrainConfig, source: str, data, threads: list[int], seed: int, warmup: int,
        rounds: int, block: int, reps: int) -> dict:
    """Check, time and break down; print both tables. Returns plain data for --json."""
    X = Net(line).scale_inputs(data.train.images)  # (50000, 784) float32
    y = data.train.labels  # (50000,) int64
    arrays = (X, y, torch.from_numpy(X).reshape(len(X), 1, 28, 28), torch.from_numpy(y))
    net = Net(line, seed=seed)
    print(f"\nconv: '{net.spec}' ({source}), batch {config.batch_size}, lr {config.learning_rate:g}, "
          f"momentum {config.momentum:g}, weight decay {config.weight_decay:g}; "
          f"{sum(p.size for p in net.parameters()):,} parameters, {net.macs() / 1e6:.1f} M multiply-adds per image")
    result: dict = {"line": net.spec, "source": source, "batch": config.batch_size, "momentum": config.momentum,
                    "threads": {}}
    with threadpool_limits(limits=1):
        torch.set_num_threads(1)
        same = check_same(line, config, arrays, seed)
    result["equivalence"] = {k: v for k, v in same.items() if k != "losses"}
    if same["ok"] is None:
        print(f"  equivalence: skipped ({same['why']})")
    else:
        print(f"  equivalence after 2 steps: losses {same['losses'][0][0]:.5f} / {same['losses'][0][1]:.5f}, "
              f"{same['losses'][1][0]:.5f} / {same['losses'][1][1]:.5f}; max relative weight difference "
              f"{same['max_rel_param_diff']:.1e}  [{'OK' if same['ok'] else 'MISMATCH'}]")
    for t in threads:
        with threadpool_limits(limits=t):
            torch.set_num_threads(t)
            times = time_sides(line, config, arrays, seed, warmup, rounds, block)
            side = Side("mnistnet", line, config, *arrays, seed)
            batches = batch_order(len(y), config.batch_size, warmup + rounds * block, seed + 1)
            for idx in batches[:warmup]:
                side.step(idx)
            layer_ms, step_ms, captured = layer_breakdown(side, batches[warmup:warmup + max(rounds * block // 2, 5)])
            pieces = piece_breakdown(side, captured, reps)
        ours, theirs = (statistics.median(times[w]) * 1e3 for w in ("mnistnet", "torch"))
        result["threads"][t] = {"mnistnet_ms": ours, "torch_ms": theirs, "ratio": ours / theirs,
                                "mnistnet_p90_ms": float(np.percentile(times["mnistnet"], 90)) * 1e3,
                                "torch_p90_ms": float(np.percentile(times["torch"], 90)) * 1e3,
                                "steps": len(times["mnistnet"]), "breakdown_step_ms": step_ms,
                                "layers_ms": {f"{n} {k}": v for (n, k), v in layer_ms.items()},
                                "pieces_ms": pieces}
    print_tables(result, side)
    return result


def print_tables(result: dict, side: Side) -> None:
    print(f"\n  ms per batch of {result['batch']} (median; forward + backward + update):")
    print(f"  {'threads':>7}  {'mnistnet':>9}  {'torch':>8}  {'ratio':>6}  goal <= {GOAL}x")
    for t, r in result["threads"].items():
        print(f"  {t:>7}  {r['mnistnet_ms']:9.2f}  {r['torch_ms']:8.2f}  {r['ratio']:6.2f}  "
              f"{'holds' if r['ratio'] <= GOAL else 'misses'}")
    names = layer_names(side.stepper.bp.layers)
    ts = list(result["threads"])
    print("\n  where mnistnet's time goes: ms per batch inside real steps, median (" +
          ", ".join(f"{t} thread{'s' if t > 1 else ''}" for t in ts) + ")")
    print(f"  {'layer':<14}" + "".join(f"{'fwd':>8}{'bwd':>8}{'total':>8}{'share':>7}" for _ in ts))
    for name in names:
        row = f"  {name:<14}"
        for t in ts:
            r = result["threads"][t]
            f, b = (r["layers_ms"].get(f"{name} {k}", 0.0) for k in ("forward", "backward"))
            row += f"{f:8.2f}{b:8.2f}{f + b:8.2f}{(f + b) / r['breakdown_step_ms']:7.0%}"
        print(row)
    rests = [result["threads"][t]["breakdown_step_ms"] - sum(result["threads"][t]["layers_ms"].values()) for t in ts]
    print(f"  {'the rest':<14}" + "".join(f"{'':16}{rest:8.2f}{rest / result['threads'][t]['breakdown_step_ms']:7.0%}"
                                         for t, rest in zip(ts, rests)))
    print(f"  {'whole step':<14}" + "".join(f"{'':16}{result['threads'][t]['breakdown_step_ms']:8.2f}{'':7}"
                                           for t in ts))
    print("  (the rest: gathering the batch, softmax, loss, the output error; a whole step's median is not\n"
          "  the sum of the layers' medians)")
    print("\n  pieces of each conv layer, timed alone on its buffers after a real step (ms, median):")
    for name in result["threads"][ts[0]]["pieces_ms"]:
        print(f"  {name}")
        for piece in result["threads"][ts[0]]["pieces_ms"][name]:
            print(f"    {piece:<30}" + "".join(f"{result['threads'][t]['pieces_ms'][name][piece]:9.2f}" for t in ts))
        sums = [sum(v for k, v in result["threads"][t]["pieces_ms"][name].items() if not k.startswith(" "))
                for t in ts]
        steps = [sum(result["threads"][t]["layers_ms"].get(f"{name} {k}", 0.0) for k in ("forward", "backward"))
                 for t in ts]
        print(f"    {'sum of the pieces':<30}" + "".join(f"{v:9.2f}" for v in sums))
        print(f"    {'the layer inside real steps':<30}" + "".join(f"{v:9.2f}" for v in steps))
