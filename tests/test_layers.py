"""Layers as modules (mnistnet.layers) and networks described in one line (mnistnet.net):
every layer's gradient against finite differences in float64, Conv2D and MaxPool against a
direct loop, the line's grammar and its errors, training through mnistnet.train."""

import numpy as np
import pytest

from mnistnet import MLP, TrainConfig
from mnistnet.data import MNIST, Split
from mnistnet.layers import Conv2D, MaxPool2
from mnistnet.net import Net, NetBackprop, build, canonical, parse
from mnistnet.train import train


def conv_reference(x, W, b, k, pad):
    """Direct loops: x (n, H, W, C), W (k*k*C, F) in (i, j, c) row order."""
    n, H, Wd, C = x.shape
    F = W.shape[1]
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    Ho, Wo = H + 2 * pad - k + 1, Wd + 2 * pad - k + 1
    Wk = W.reshape(k, k, C, F)
    out = np.zeros((n, Ho, Wo, F))
    for a in range(n):
        for r in range(Ho):
            for c in range(Wo):
                for f in range(F):
                    s = b[f]
                    for ch in range(C):
                        for i in range(k):
                            for j in range(k):
                                s += xp[a, r + i, c + j, ch] * Wk[i, j, ch, f]
                    out[a, r, c, f] = s
    return out


def conv64(k, padding, shape, rng):
    """A Conv2D of 4 filters in float64 for up to 3 images of `shape`, randomly initialised."""
    conv = Conv2D(4, k, padding)
    conv.setup(shape, 3, np.float64)
    conv.init(rng, np.float64)
    return conv


@pytest.mark.parametrize("k,padding,shape", [(3, "valid", (6, 7, 2)), (3, "same", (5, 5, 3)), (5, "same", (7, 6, 1)),
                                             (1, "valid", (4, 4, 2))])
def test_conv_forward_matches_a_direct_loop(k, padding, shape):
    rng = np.random.default_rng(1)
    conv = conv64(k, padding, shape, rng)
    conv.b[:] = rng.normal(size=4)
    x = rng.normal(size=(2, *shape))
    got = conv.forward(x, True)
    want = conv_reference(x, conv.W, conv.b, k, conv.pad)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-12


@pytest.mark.parametrize("k,padding,shape", [(3, "valid", (6, 7, 2)), (3, "same", (5, 5, 3)), (5, "valid", (12, 11, 3)),
                                             (5, "same", (4, 3, 2))])
def test_conv_backward_sums_each_patch_back_where_a_direct_loop_does(k, padding, shape):
    """dx of Conv2D (col2im in runs of k*C) against dx[y + i, x + j, c] += dy[y, x, f] W[i, j, c, f]."""
    rng = np.random.default_rng(2)
    conv = conv64(k, padding, shape, rng)
    conv.need_dx = True
    x = rng.normal(size=(3, *shape))
    dy = rng.normal(size=conv.forward(x, True).shape)
    got = conv.backward(dy, None).copy()
    H, Wd, C = shape
    p = conv.pad
    Wk = conv.W.reshape(k, k, C, 4)
    want = np.zeros((3, H + 2 * p, Wd + 2 * p, C))
    for y in range(dy.shape[1]):
        for xx in range(dy.shape[2]):
            for i in range(k):
                for j in range(k):
                    want[:, y + i, xx + j, :] += dy[:, y, xx, :] @ Wk[i, j].T
    assert np.abs(got - want[:, p:p + H, p:p + Wd, :]).max() < 1e-12



def test_maxpool_forward_matches_a_direct_loop():
    rng = np.random.default_rng(2)
    pool = MaxPool2()
    assert pool.setup((7, 6, 3), 4, np.float64) == (3, 3, 3)
    x = rng.normal(size=(4, 7, 6, 3))
    got = pool.forward(x, True)
    want = np.array([[[[max(x[a, 2 * r + i, 2 * c + j, ch] for i in range(2) for j in range(2))
                        for ch in range(3)] for c in range(3)] for r in range(3)] for a in range(4)])
    assert np.array_equal(got, want)
    # The gradient goes to each window's maximum only; the dropped odd row gets none.
    dx = pool.backward(np.ones_like(got), None)
    assert dx[:, 6].sum() == 0 and dx.sum() == got.size
    assert all(dx[a, 2 * r + i, 2 * c + j, ch] == (x[a, 2 * r + i, 2 * c + j, ch] == got[a, r, c, ch])
               for a in range(4) for r in range(3) for c in range(3) for ch in range(3) for i in range(2)
               for j in range(2))


SPECS = ["conv 3x3 same tanh - pool - conv 4x3 - dropout 0.3 - dense 7 tanh - dense 5",
         "conv 2x5 - pool - pool - dense 6",
         "dense 12 tanh - dropout 0.5 - dense 9"]


@pytest.mark.parametrize("spec", SPECS)
def test_every_layers_gradient_matches_finite_differences(spec):
    """float64, 4 images: d loss / d every parameter array at 6 random entries each, central
    differences with eps 1e-6; dropout's mask drawn the same for every evaluation."""
    rng = np.random.default_rng(3)
    net = Net(spec, seed=4, dtype=np.float64)
    X = rng.normal(size=(4, 784))
    y = rng.integers(0, 10, 4)
    bp = NetBackprop(net, 4)

    def loss():
        for layer in bp.layers:
            if hasattr(layer, "rng"):
                layer.rng = np.random.default_rng(7)
        bp.forward(X, y)
        return bp.loss()

    loss()
    bp.backward(y, 1.0, None)
    grads = [g for layer in bp.layers if layer.W is not None for g in (layer.grad_w.copy(), layer.grad_b.copy())]
    params = net.parameters()
    assert len(grads) == len(params) >= 3
    worst = 0.0
    for p, g in zip(params, grads):
        for flat in rng.choice(p.size, min(6, p.size), replace=False):
            idx = np.unravel_index(flat, p.shape)
            keep = p[idx]
            p[idx] = keep + 1e-6
            up = loss()
            p[idx] = keep - 1e-6
            down = loss()
            p[idx] = keep
            numeric = (up - down) / 2e-6
            err = abs(numeric - g[idx]) / max(1e-6, abs(numeric) + abs(g[idx]))
            worst = max(worst, err)
    print(f"{spec}: worst relative error {worst:.1e}")
    assert worst < 1e-5


@pytest.mark.parametrize("bad,says", [
    ("", "empty"), ("conv 8x5 - poll", "'poll' is not a layer"), ("conv 0x5", "filters must be 1"),
    ("conv 8x4 same", "odd kernel"), ("dense 5000", "units must be 1 to 2048"), ("dropout 1", "below 1"),
    ("dense 10 - conv 4x3", "before the first dense"), ("conv 8x99", "kernel size"),
    ("conv 128x9 same - conv 128x9 same", "values per image"), ("- " * 20, "over the limit")])
def test_a_bad_line_names_the_bad_token(bad, says):
    with pytest.raises(ValueError, match=says):
        Net(bad) if "values" in says else parse(bad)


def test_the_line_is_written_one_way_and_dense_relu_is_an_mlp():
    assert canonical("CONV 8x5  -pool- conv 16 x 5 relu - pool - dense 128") == \
        "conv 8x5 - pool - conv 16x5 - pool - dense 128"
    m = build("dense 256 - dense 128")
    assert isinstance(m, MLP) and m.layer_sizes == (784, 256, 128, 10)
    net = build("conv 8x5 - pool - conv 16x5 - pool - dense 128")
    assert isinstance(net, Net) and net.layer_sizes == (784, 256, 128, 10)
    assert [W.shape for W in net.weights] == [(25, 8), (200, 16), (256, 128), (128, 10)]


def test_a_small_cnn_learns_through_the_training_loop(tiny_mnist):
    """The MLP's loop (SGD with momentum, the fused update) trains a Net: loss falls, accuracy
    rises well above chance, and the evaluation chunks give the same answer as predict."""
    net = Net("conv 4x5 - pool - dense 32", seed=1)
    before = net.copy_parameters()
    hist = train(net, tiny_mnist, TrainConfig(epochs=2, learning_rate=0.05, momentum=0.9, batch_size=32))
    assert hist.status == "finished"
    assert any(not np.array_equal(a, b) for a, b in zip(before, net.parameters()))
    test = hist.epochs[-1]["test"]
    assert test["accuracy"] > 0.5, test["accuracy"]
    pred = net.predict(tiny_mnist.test.images)
    assert int((pred == tiny_mnist.test.labels).sum()) == test["correct"]


def test_dropout_is_off_at_inference_and_seeded_in_training(tiny_mnist):
    a, b = Net("dense 32 - dropout 0.5", seed=2), Net("dense 32 - dropout 0.5", seed=2)
    x = tiny_mnist.test.images[:50]
    assert np.array_equal(a.predict_proba(x), a.predict_proba(x))  # no mask at inference
    small = MNIST(*(Split(s.images[:300], s.labels[:300]) for s in (tiny_mnist.train, tiny_mnist.val, tiny_mnist.test)))
    ha = train(a, small, TrainConfig(epochs=1, seed=5))
    hb = train(b, small, TrainConfig(epochs=1, seed=5))
    assert ha.batch_losses == hb.batch_losses  # the same seed, the same masks
    assert all(np.array_equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_one_net_answers_many_threads_at_once_as_it_answers_one():
    """A stored model serves every session: calls from several threads, at once, each get
    their own images' answers (the stack's buffers are shared, so calls take turns)."""
    import copy
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    net = Net("conv 4x5 - pool - dense 16", seed=2)
    rng = np.random.default_rng(5)
    batches = [rng.integers(0, 256, (n, 784)).astype(np.uint8) for n in (1, 7, 300, 3, 520, 2) * 3]
    alone = [net.predict_proba(b) for b in batches]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(net.predict_proba, batches))
    assert all(np.array_equal(a, t) for a, t in zip(alone, together))
    for twin in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert np.array_equal(twin.predict_proba(batches[2]), alone[2])
