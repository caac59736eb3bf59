"""The optimiser: one SGD step (momentum, L2, a bias learning rate) fused into the backward pass.

Imports numpy and the core's network and blas modules. The training loop (mnistnet.train) and
bench/speed.py both step through `Stepper`, so the bench times the real code.
"""

from __future__ import annotations

import numpy as np

from .blas import gemm
from .net import Net, NetBackprop
from .network import MLP, Backprop


class SGD:
    """Parameter updates with optional momentum and L2, in preallocated buffers.

    Backprop hands each layer's input and error, already times the learning rate, to `layer`;
    the weight gradient x.T @ d is never written out: sgemm adds it straight into the weights
    (plain SGD) or into the velocity (momentum). Momentum is the classic v = mu v + lr g;
    p -= v, which equals PyTorch's buf = mu buf + g; p -= lr buf while the learning rate is
    constant (under a schedule, ours scales each step's gradient by that step's lr). Weight
    decay adds lr * wd * W to the weights' gradient (not the biases').
    """

    def __init__(self, model: MLP, momentum: float = 0.0, weight_decay: float = 0.0):
        self.model, self.momentum, self.weight_decay = model, float(momentum), float(weight_decay)
        params = model.parameters()
        self.velocity = [np.zeros_like(p) for p in params] if momentum else None
        self.scratch = [np.empty_like(W) for W in model.weights] if momentum and weight_decay else None
        self.grad_b = [np.empty_like(b) for b in model.biases]
        self.lr, self.bias_ratio = 0.0, 1.0
        self._ones = np.ones(0, np.float32)  # grown once to the most rows seen

    def begin(self, lr: float, bias_ratio: float) -> None:
        """Set this step's learning rate and bias_lr / lr before Backprop.backward(step=self)."""
        self.lr, self.bias_ratio = float(lr), float(bias_ratio)

    def bias_sum(self, d: np.ndarray, out: np.ndarray) -> np.ndarray:
        """d: (rows, fan_out) -> out: (fan_out,) its column sums. A conv layer's rows are every
        output pixel of the batch (36,864 for a 24x24 map of 64 images): there ones @ d, one
        sgemv, is several times faster than numpy's reduction down a column of a narrow array."""
        if len(d) <= 4096:
            return np.add.reduce(d, axis=0, out=out)
        if len(self._ones) < len(d) or self._ones.dtype != d.dtype:
            self._ones = np.ones(len(d), d.dtype)
        return np.matmul(self._ones[:len(d)], d, out=out)

    def layer(self, i: int, inp: np.ndarray, d: np.ndarray) -> None:
        """Update weights[i], biases[i] from inp: (n, fan_in) and d: (n, fan_out) = lr * dLoss/dz."""
        W, b = self.model.weights[i], self.model.biases[i]
        gb = self.grad_b[i]  # (fan_out,) lr times the bias gradient
        self.bias_sum(d, gb)
        if self.bias_ratio != 1.0:
            gb *= gb.dtype.type(self.bias_ratio)
        decay = W.dtype.type(self.lr * self.weight_decay)
        if self.velocity is None:
            if decay:
                W *= W.dtype.type(1.0) - decay  # W -= lr wd W, before the gradient step
            gemm(-1.0, inp, d, 1.0, W, trans_a=True)  # W -= inp.T @ d
            b -= gb
            return
        vw, vb = self.velocity[2 * i], self.velocity[2 * i + 1]
        gemm(1.0, inp, d, self.momentum, vw, trans_a=True)  # vw = mu vw + inp.T @ d
        if decay:
            s = self.scratch[i]
            np.multiply(W, decay, out=s)
            vw += s
        W -= vw
        vb *= vb.dtype.type(self.momentum)
        vb += gb
        b -= vb


class Stepper:
    """One SGD step on a batch, split where the loop checks the loss: `loss` then `update`."""

    def __init__(self, model: MLP, config, batch_size: int):
        """model: an MLP or a Net; config: a TrainConfig (its momentum, weight_decay and seed
        (a Net's dropout) are read)."""
        self.bp = NetBackprop(model, batch_size, config.seed) if isinstance(model, Net) else Backprop(model, batch_size)
        self.sgd = SGD(model, config.momentum, config.weight_decay)

    def loss(self, xb: np.ndarray, yb: np.ndarray) -> float:
        """xb: (n, 784) float32 scaled, yb: (n,) int64 -> mean NLL of the batch (forward pass)."""
        self.bp.forward(xb, yb)
        return self.bp.loss()

    def update(self, yb: np.ndarray, lr: float, bias_lr: float) -> None:
        """Backward pass and parameter update for the batch given to `loss`."""
        # The errors come out already times lr: plain SGD's update is one fused product per layer.
        self.sgd.begin(lr, bias_lr / lr)
        self.bp.backward(yb, scale=lr, step=self.sgd)
