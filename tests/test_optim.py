"""The optimiser against independent references: momentum, weight decay, the bias learning rate
and cosine decay, each checked parameter by parameter after a few steps of `train()`.

The reference is a plain float64 NumPy transcription of PyTorch's SGD
(torch/optim/sgd.py, `_single_tensor_sgd`: d = g + wd p; buf = mu buf + d (buf = d at the first
step); p -= lr buf) with two parameter groups, weights {lr, weight_decay} and biases
{bias_learning_rate, no decay}, and CosineAnnealingLR (eta_min 0, stepped once per batch):
lr_t = lr (1 + cos(pi t / T)) / 2 for step t of T. Gradients come from a float64 forward and
backward pass written out here, not from mnistnet.

Every step is full-batch (batch_size = the training set's size), so the order of the images
does not matter and no test depends on how `train()` shuffles or seeds its streams. Each test
also checks that the feature matters: the reference without it is far outside the tolerance.
"""

import math

import numpy as np
import pytest

from mnistnet import MLP, TrainConfig, load_mnist, train
from mnistnet.data import MNIST, Split

N = 64  # training images: one full batch per epoch, so epochs == SGD steps
STEPS = 6
SIZES = (784, 5, 4, 10)  # two hidden layers: three weight matrices to check


@pytest.fixture(scope="module")
def tiny():
    """64 real training images; 10 val and 10 test images (train() measures them each epoch)."""
    d = load_mnist()
    return MNIST(Split(d.train.images[:N], d.train.labels[:N]), Split(d.val.images[:10], d.val.labels[:10]),
                 Split(d.test.images[:10], d.test.labels[:10]))


def grads64(params: list[np.ndarray], X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """params: [W0, b0, W1, b1, ...] float64; X: (n, 784) float64 scaled; y: (n,) int64
    -> gradients of the mean NLL of softmax(ReLU MLP(X)), float64, in the order of params."""
    Ws, bs = params[0::2], params[1::2]
    acts = [X]  # acts[l]: (n, sizes[l]) the input of layer l
    for i, (W, b) in enumerate(zip(Ws, bs)):
        z = acts[-1] @ W + b
        acts.append(np.maximum(z, 0.0) if i < len(Ws) - 1 else z)
    z = acts[-1]  # (n, 10) logits
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d = p.copy()
    d[np.arange(len(y)), y] -= 1.0
    d /= len(y)  # mean over the batch
    out = [None] * len(params)
    for i in reversed(range(len(Ws))):
        out[2 * i] = acts[i].T @ d
        out[2 * i + 1] = d.sum(axis=0)
        if i:
            d = (d @ Ws[i].T) * (acts[i] > 0)
    return out


def cosine_lr(base: float, t: int, total: int) -> float:
    """PyTorch's CosineAnnealingLR with eta_min 0 (closed form) at step t of total."""
    return base * (1.0 + math.cos(math.pi * t / total)) / 2.0


def torch_sgd(params0, X, y, steps, lr, bias_lr=None, momentum=0.0, weight_decay=0.0, cosine=False):
    """`steps` full-batch steps of torch.optim.SGD, transcribed: groups [weights: lr, weight_decay],
    [biases: bias_lr (default lr), weight_decay 0]; `cosine` steps CosineAnnealingLR(T_max=steps)
    after every step. params0: float64 arrays (copied) -> the parameters after the steps."""
    params = [p.copy() for p in params0]
    bufs = [None] * len(params)
    groups = {0: (lr, weight_decay), 1: (bias_lr or lr, 0.0)}  # i % 2: weights, biases
    for t in range(steps):
        grads = grads64(params, X, y)
        for i, (p, g) in enumerate(zip(params, grads)):
            base, wd = groups[i % 2]
            group_lr = cosine_lr(base, t, steps) if cosine else base
            d_p = g + wd * p if wd else g
            if momentum:
                bufs[i] = d_p.copy() if bufs[i] is None else momentum * bufs[i] + d_p
                d_p = bufs[i]
            p -= group_lr * d_p
    return params


def documented_momentum(params0, X, y, steps, lr, momentum, cosine):
    """mnistnet's documented momentum (mnistnet/train.py, _SGD): v = mu v + lr_t g; p -= v,
    the learning rate inside the velocity. Equal to PyTorch's form while lr is constant."""
    params = [p.copy() for p in params0]
    vel = [np.zeros_like(p) for p in params]
    for t in range(steps):
        lr_t = cosine_lr(lr, t, steps) if cosine else lr
        for p, v, g in zip(params, vel, grads64(params, X, y)):
            v *= momentum
            v += lr_t * g
            p -= v
    return params


def start(tiny):
    """A fresh model and everything the references need: (model, its parameters as float64,
    X (N, 784) float64 scaled by the model, y (N,) int64)."""
    model = MLP(SIZES, seed=3)
    X = model.scale_inputs(tiny.train.images).astype(np.float64)
    return model, [p.astype(np.float64) for p in model.parameters()], X, tiny.train.labels


def trained(model, tiny, **config):
    hist = train(model, tiny, TrainConfig(batch_size=N, epochs=STEPS, **config))
    assert hist.status == "finished" and len(hist.epochs) == STEPS
    return [p.astype(np.float64) for p in model.parameters()], hist


def tolerance(ref, p0) -> list[float]:
    """Per parameter: float32 arithmetic over a few steps, as a share of how far the reference
    moved the parameter (at least 1e-7 absolute)."""
    return [2e-4 * np.abs(r - p).max() + 1e-7 for r, p in zip(ref, p0)]


def assert_close(got, ref, p0):
    for i, (g, r, tol) in enumerate(zip(got, ref, tolerance(ref, p0))):
        err = np.abs(g - r).max()
        assert err <= tol, f"parameter {i} ({'W' if i % 2 == 0 else 'b'}{i // 2}): off by {err:.3g} > {tol:.3g}"


def assert_matters(with_, without, p0, which):
    """The feature moves each parameter in `which` far beyond the tolerance."""
    tol = tolerance(with_, p0)
    for i in which:
        gap = np.abs(with_[i] - without[i]).max()
        assert gap > 50 * tol[i], f"parameter {i}: the feature changes it by only {gap:.3g} (tolerance {tol[i]:.3g})"


WEIGHTS, BIASES, ALL = (0, 2, 4), (1, 3, 5), range(6)


def test_plain_sgd_matches_the_reference(tiny):
    model, p0, X, y = start(tiny)
    got, _ = trained(model, tiny, learning_rate=0.1)
    ref = torch_sgd(p0, X, y, STEPS, lr=0.1)
    assert_close(got, ref, p0)
    assert_matters(ref, p0, p0, ALL)  # training moved every parameter


def test_momentum_matches_pytorch(tiny):
    model, p0, X, y = start(tiny)
    got, _ = trained(model, tiny, learning_rate=0.1, momentum=0.9)
    ref = torch_sgd(p0, X, y, STEPS, lr=0.1, momentum=0.9)
    assert_close(got, ref, p0)
    assert_matters(ref, torch_sgd(p0, X, y, STEPS, lr=0.1), p0, ALL)


def test_weight_decay_matches_pytorch_on_weights_only(tiny):
    model, p0, X, y = start(tiny)
    got, _ = trained(model, tiny, learning_rate=0.1, weight_decay=0.5)
    ref = torch_sgd(p0, X, y, STEPS, lr=0.1, weight_decay=0.5)
    assert_close(got, ref, p0)
    no_decay = torch_sgd(p0, X, y, STEPS, lr=0.1)
    assert_matters(ref, no_decay, p0, WEIGHTS)
    # Decaying the biases too would move them this far from the reference:
    decay_all = [p.copy() for p in p0]
    for _ in range(STEPS):
        for p, g in zip(decay_all, grads64(decay_all, X, y)):
            p -= 0.1 * (g + 0.5 * p)
    assert_matters(decay_all, ref, p0, BIASES)


def test_bias_learning_rate_is_a_group_of_its_own(tiny):
    model, p0, X, y = start(tiny)
    got, _ = trained(model, tiny, learning_rate=0.1, bias_learning_rate=0.5)
    ref = torch_sgd(p0, X, y, STEPS, lr=0.1, bias_lr=0.5)
    assert_close(got, ref, p0)
    assert_matters(ref, torch_sgd(p0, X, y, STEPS, lr=0.1), p0, BIASES)


def test_cosine_decay_matches_cosine_annealing(tiny):
    model, p0, X, y = start(tiny)
    got, hist = trained(model, tiny, learning_rate=0.3, lr_schedule="cosine")
    ref = torch_sgd(p0, X, y, STEPS, lr=0.3, cosine=True)
    assert_close(got, ref, p0)
    assert_matters(ref, torch_sgd(p0, X, y, STEPS, lr=0.3), p0, ALL)
    # one step per epoch: each epoch's record carries the learning rate of its step
    assert [e["learning_rate"] for e in hist.epochs] == pytest.approx(
        [cosine_lr(0.3, t, STEPS) for t in range(STEPS)], rel=1e-12)


def test_everything_at_once_matches_pytorch(tiny):
    """Momentum, weight decay and a bias learning rate together, at a constant learning rate."""
    model, p0, X, y = start(tiny)
    got, _ = trained(model, tiny, learning_rate=0.05, bias_learning_rate=0.2, momentum=0.8, weight_decay=0.3)
    ref = torch_sgd(p0, X, y, STEPS, lr=0.05, bias_lr=0.2, momentum=0.8, weight_decay=0.3)
    assert_close(got, ref, p0)


def test_momentum_with_cosine_follows_the_documented_formula(tiny):
    """Under a changing learning rate mnistnet's momentum (lr inside the velocity) differs from
    PyTorch's (lr applied to the buffer): the documented formula is the reference here."""
    model, p0, X, y = start(tiny)
    got, _ = trained(model, tiny, learning_rate=0.1, momentum=0.9, lr_schedule="cosine")
    ref = documented_momentum(p0, X, y, STEPS, lr=0.1, momentum=0.9, cosine=True)
    assert_close(got, ref, p0)
    assert_matters(ref, documented_momentum(p0, X, y, STEPS, lr=0.1, momentum=0.9, cosine=False), p0, ALL)
    # the difference from PyTorch is real (and the two agree at a constant learning rate)
    pytorch = torch_sgd(p0, X, y, STEPS, lr=0.1, momentum=0.9, cosine=True)
    assert_matters(ref, pytorch, p0, WEIGHTS)
    assert_close(documented_momentum(p0, X, y, STEPS, lr=0.1, momentum=0.9, cosine=False),
                 torch_sgd(p0, X, y, STEPS, lr=0.1, momentum=0.9), p0)
