"""mnistnet.blas.gemm against numpy's own product, on both of its paths."""

import numpy as np
import pytest

from mnistnet import blas
from mnistnet.network import MLP
from mnistnet.sgd import SGD, Stepper
from mnistnet.train import TrainConfig


def test_numpy_bundles_the_sgemm_this_machine_uses():
    # On this lab's numpy wheels the fused path is the one training takes; a numpy build without
    # it would still train (the numpy path), only slower.
    assert blas.AVAILABLE


@pytest.mark.parametrize("use_blas", [True, False])
@pytest.mark.parametrize("trans_a", [True, False])
@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (-0.13, 1.0), (0.5, 0.9), (2.0, 0.0)])
def test_gemm_is_alpha_product_plus_beta_c(use_blas, trans_a, alpha, beta):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 37) if trans_a else (37, 50)).astype(np.float32)
    b = rng.standard_normal((50, 23)).astype(np.float32)
    c = rng.standard_normal((37, 23)).astype(np.float32)
    op_a = a.T if trans_a else a
    expected = alpha * (op_a.astype(np.float64) @ b) + beta * c
    blas.gemm(alpha, a, b, beta, c, trans_a=trans_a, use_blas=use_blas)
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-4)


def test_non_contiguous_operands_take_the_numpy_path_and_are_right():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((40, 60)).astype(np.float32)[:, ::2]  # (40, 30), strided
    b = rng.standard_normal((30, 8)).astype(np.float32)
    c = np.zeros((40, 8), np.float32)
    blas.gemm(1.0, a, b, 0.0, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", ["dtype", "shape", "readonly"])
def test_gemm_refuses_what_it_cannot_do_safely(bad):
    a = np.ones((4, 3), np.float32)
    b = np.ones((3, 2), np.float32)
    c = np.zeros((4, 2), np.float32)
    if bad == "dtype":
        a = a.astype(np.float64)
    elif bad == "shape":
        c = np.zeros((4, 3), np.float32)
    else:
        c.flags.writeable = False
    with pytest.raises(ValueError, match="gemm"):
        blas.gemm(1.0, a, b, 1.0, c)


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.0, 1e-3), (0.9, 1e-3)])
def test_fused_step_equals_gradient_then_update(momentum, weight_decay):
    """Two steps of the fused optimiser against Backprop's plain gradients and the documented
    update (v = mu v + lr (g + wd W); W -= v; biases without decay, at bias_lr)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 784)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    fused, plain = MLP((784, 12, 10), seed=3), MLP((784, 12, 10), seed=3)
    stepper = Stepper(fused, TrainConfig(momentum=momentum, weight_decay=weight_decay), 16)
    ref = Stepper(plain, TrainConfig(), 16).bp  # for its gradients only
    velocity = [np.zeros_like(p) for p in plain.parameters()]
    lr, bias_lr = 0.1, 0.3
    for _ in range(2):
        stepper.loss(x, y)
        stepper.update(y, lr, bias_lr)
        ref.forward(x, y)
        ref.backward(y)  # grad_w, grad_b: the plain gradients
        grads = [g for pair in zip(ref.grad_w, ref.grad_b) for g in pair]
        for i, (p, g) in enumerate(zip(plain.parameters(), grads)):
            step = (lr * (g + weight_decay * p)) if i % 2 == 0 else bias_lr * g
            velocity[i] = momentum * velocity[i] + step
            p -= velocity[i]
    for p, q in zip(fused.parameters(), plain.parameters()):
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-6)
    assert not np.allclose(fused.weights[0], MLP((784, 12, 10), seed=3).weights[0])  # it did move


def test_sgd_without_momentum_keeps_no_velocity():
    model = MLP((784, 8, 10), seed=0)
    assert SGD(model).velocity is None and SGD(model, momentum=0.5).velocity is not None
