"""The network's math against independent references: finite differences and a hand step."""

import math
import subprocess
import sys

import numpy as np
import pytest

from mnistnet.network import MLP, Backprop
from mnistnet.train import Stepper, TrainConfig


def _float64(model: MLP) -> MLP:
    model.weights = [w.astype(np.float64) for w in model.weights]
    model.biases = [b.astype(np.float64) for b in model.biases]
    return model


def _loss(bp: Backprop, X, y) -> float:
    bp.forward(X, y)
    return bp.loss()


@pytest.mark.parametrize("hidden", [(7,), (6, 5), (5, 4, 3)])
def test_gradient_matches_central_differences(hidden):
    rng = np.random.default_rng(1)
    model = _float64(MLP((784, *hidden, 10), seed=3))
    for b in model.biases:  # non-zero biases so their gradients are exercised too
        b[...] = rng.normal(0, 0.1, b.shape)
    X = rng.normal(0, 1, (4, 784))
    y = np.array([0, 3, 9, 3])
    bp = Backprop(model, 4)
    bp.forward(X, y)
    bp.backward(y)
    analytic = [g.copy() for pair in zip(bp.grad_w, bp.grad_b) for g in pair]
    eps = 1e-6
    for param, grad in zip(model.parameters(), analytic):
        numeric = np.empty_like(param)
        for i in range(param.size):
            old = param.flat[i]
            param.flat[i] = old + eps
            up = _loss(bp, X, y)
            param.flat[i] = old - eps
            down = _loss(bp, X, y)
            param.flat[i] = old
            numeric.flat[i] = (up - down) / (2 * eps)
        rel = np.linalg.norm(numeric - grad) / max(np.linalg.norm(numeric) + np.linalg.norm(grad), 1e-12)
        assert rel < 1e-6, f"{param.shape}: relative error {rel}"
        assert np.linalg.norm(grad) > 0


def test_one_sgd_step_matches_hand_computation():
    # 784-1-10: only pixels 0 and 1 and the single hidden unit matter.
    model = MLP((784, 1, 10), seed=0)
    model.weights[0][...] = 0
    model.weights[0][0, 0], model.weights[0][1, 0] = 0.5, -0.25
    model.biases[0][...] = 0.1
    model.weights[1][0, :] = [0.1 * k for k in range(10)]
    model.biases[1][...] = 0
    X = np.zeros((2, 784), np.float32)
    X[0, 0], X[0, 1] = 1.0, 2.0  # sample 0: h = relu(0.5 - 0.5 + 0.1) = 0.1
    y = np.array([3, 0])  # sample 1 is all zeros: h = relu(0.1) = 0.1
    lr = 0.5
    stepper = Stepper(model, TrainConfig(learning_rate=lr), 2)  # the training loop's own step
    loss = stepper.loss(X, y)
    stepper.update(y, lr, lr)

    # By hand: both samples have h = 0.1, logits z_k = 0.01 k, p_k = e^{0.01k} / sum_j e^{0.01j}.
    e = [math.exp(0.01 * k) for k in range(10)]
    p = [v / sum(e) for v in e]
    assert loss == pytest.approx((-math.log(p[3]) - math.log(p[0])) / 2, rel=1e-6)
    # dz (mean over the batch of 2) = p - (onehot(3) + onehot(0)) / 2
    dz = [p[k] - ((k == 3) + (k == 0)) / 2 for k in range(10)]
    for k in range(10):
        assert model.weights[1][0, k] == pytest.approx(0.1 * k - lr * 0.1 * dz[k], abs=1e-7)
        assert model.biases[1][k] == pytest.approx(-lr * dz[k], abs=1e-7)
    # dh per sample: sum_k W1_k (p_k - onehot_k); sample 0 label 3, sample 1 label 0.
    dh0 = sum(0.1 * k * p[k] for k in range(10)) - 0.3
    dh1 = sum(0.1 * k * p[k] for k in range(10)) - 0.0
    assert model.weights[0][0, 0] == pytest.approx(0.5 - lr * (1.0 * dh0) / 2, abs=1e-7)
    assert model.weights[0][1, 0] == pytest.approx(-0.25 - lr * (2.0 * dh0) / 2, abs=1e-7)
    assert model.biases[0][0] == pytest.approx(0.1 - lr * (dh0 + dh1) / 2, abs=1e-7)
    assert np.all(model.weights[0][2:] == 0)


def test_softmax_and_nll_finite_for_huge_logits():
    model = MLP((784, 4, 10), seed=0)
    model.weights[1][...] = 0
    model.biases[1][...] = [1000, -1000, 0, 0, 0, 0, 0, 0, 0, -1000]
    X = np.zeros((3, 784), np.float32)
    bp = Backprop(model, 3)
    probs = bp.forward(X, np.array([0, 1, 9]))
    loss = bp.loss()
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1)
    assert math.isfinite(loss)
    # labels 1 and 9 sit 2000 below the max: their NLL is exactly 2000, not clipped
    assert loss == pytest.approx((0 + 2000 + 2000) / 3, rel=1e-5)
    bp.backward(np.array([0, 1, 9]))
    assert all(np.isfinite(g).all() for g in bp.grad_w + bp.grad_b)
    p = model.predict_proba(np.zeros((2, 784), np.uint8))
    assert np.isfinite(p).all() and p.dtype == np.float32 and p.shape == (2, 10)


def test_backward_before_forward_refused():
    bp = Backprop(MLP((784, 3, 10)), 2)
    with pytest.raises(RuntimeError, match="before forward"):
        bp.backward(np.array([0, 1]))


def test_init_is_uniform_in_fan_in_bound_and_seeded():
    a, b, c = MLP((784, 64, 32, 10), seed=5), MLP((784, 64, 32, 10), seed=5), MLP((784, 64, 32, 10), seed=6)
    for w, fan_in in zip(a.weights, (784, 64, 32)):
        assert w.dtype == np.float32 and np.abs(w).max() <= 1 / math.sqrt(fan_in)
        assert np.abs(w).max() > 0.9 / math.sqrt(fan_in)
    assert all(np.array_equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not np.array_equal(a.weights[0], c.weights[0])
    assert all(not bias.any() for bias in a.biases)


def test_inputs_uint8_float_and_image_shapes_agree():
    model = MLP((784, 16, 10), seed=0)
    img = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    p1 = model.predict_proba(img)
    p2 = model.predict_proba(img.reshape(5, 784).astype(np.float32) / 255)
    assert np.allclose(p1, p2, atol=1e-6)
    pred = model.predict(img)
    assert pred.dtype == np.int64 and pred.shape == (5,) and np.array_equal(pred, p1.argmax(1))


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 10)), "shape"),
    (np.full((1, 784), 2.0), r"\[0, 1\]"),
    (np.full((1, 784), np.nan), r"\[0, 1\]"),
    (np.zeros((1, 784), np.int32), "dtype"),
])
def test_bad_inputs_named(bad, match):
    with pytest.raises(ValueError, match=match):
        MLP((784, 8, 10)).predict_proba(bad)


@pytest.mark.parametrize("sizes", [(784, 10), (784, 0, 10), (785, 8, 10), (784, 8, 9), (784, 2.5, 10)])
def test_bad_layer_sizes(sizes):
    with pytest.raises(ValueError, match="layer_sizes|hidden"):
        MLP(sizes)


def test_core_imports_no_ui_libraries():
    code = "import sys, mnistnet, mnistnet.__main__; print([m for m in ('streamlit', 'plotly') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
