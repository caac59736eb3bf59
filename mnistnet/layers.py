"""Layers as modules: each owns its forward pass, its backward pass and its parameters.

Imports numpy only. Images flow as (n, H, W, C) arrays (channels last): a convolution's
im2col matrix times its weights is then already its output, with no transpose. Every layer:

    setup(in_shape, batch, dtype) -> out_shape   buffers for at most `batch` rows, made once
                                                 (batch 0: shapes only, nothing large allocated)
    forward(x, train) -> y                       x: (n, *in_shape), n <= batch; y a buffer view
    backward(dy, step) -> dx                     dy: like y; dx like x (None when not needed)

Buffers are reused by every step (fresh large arrays cost more than the arithmetic on these
machines). A layer with parameters holds W: (fan_in, fan_out) and b: (fan_out,) of the
network's dtype and an `index` into the network's weights/biases; its backward hands the
matrix that fed sgemm (inp) and the output error (d, already times the learning rate) to
step.layer(index, inp, d), the optimiser the MLP uses (mnistnet.sgd.SGD), which updates the
weights in place: so it must run after the layer's own dx has used W. With step None the
gradient goes to grad_w, grad_b instead (the gradient checks).
"""

from __future__ import annotations

import numpy as np


class Layer:
    """No parameters unless a subclass says so."""

    W: np.ndarray | None = None
    b: np.ndarray | None = None
    grad_w: np.ndarray | None = None  # made on first need (the gradient checks): training never needs them
    grad_b: np.ndarray | None = None
    index: int = -1
    need_dx = True  # False for the first layer: nothing below it wants its input's error

    def setup(self, in_shape: tuple, batch: int, dtype) -> tuple:
        raise NotImplementedError

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, step) -> np.ndarray | None:
        raise NotImplementedError

    def init(self, rng: np.random.Generator, dtype) -> None:
        """A parameter layer's W uniform in +-1/sqrt(fan_in) (as the MLP's), b zero; needs
        fan_in and fan_out from setup."""
        bound = 1.0 / np.sqrt(self.fan_in)
        self.W = rng.uniform(-bound, bound, (self.fan_in, self.fan_out)).astype(dtype)
        self.b = np.zeros(self.fan_out, dtype)

    def parameter_count(self) -> int:
        """Weights and biases (after setup); 0 for a layer without parameters."""
        return (self.fan_in + 1) * self.fan_out if hasattr(self, "fan_out") else 0

    def macs(self) -> int:
        """Multiply-adds per image (forward), for the run-size limit."""
        return 0

    def activations(self) -> int:
        """Floats this layer keeps per image (its buffers), for the memory limit."""
        return 0


def _update(layer: Layer, inp2d: np.ndarray, d2d: np.ndarray, step) -> None:
    """The parameter step of a Dense or Conv2D layer: inp2d (rows, fan_in), d2d (rows, fan_out)."""
    if step is not None:
        step.layer(layer.index, inp2d, d2d)
    else:
        if layer.grad_w is None:
            layer.grad_w = np.empty((layer.fan_in, layer.fan_out), d2d.dtype)
            layer.grad_b = np.empty(layer.fan_out, d2d.dtype)
        np.matmul(inp2d.T, d2d, out=layer.grad_w)
        np.add.reduce(d2d, axis=0, out=layer.grad_b)


class Dense(Layer):
    """x: (n, fan_in) -> x @ W + b: (n, units). No activation (that is a layer of its own)."""

    def __init__(self, units: int):
        self.units = int(units)

    def setup(self, in_shape, batch, dtype):
        if len(in_shape) != 1:
            raise ValueError(f"dense needs a flat input, got shape {in_shape}")
        self.fan_in, self.fan_out = in_shape[0], self.units
        self.y = np.empty((batch, self.units), dtype)
        self.dx = np.empty((batch, self.fan_in), dtype)
        return (self.units,)

    def forward(self, x, train):
        n = len(x)
        self._x = x
        y = self.y[:n]
        np.matmul(x, self.W, out=y)
        y += self.b
        return y

    def backward(self, dy, step):
        n = len(dy)
        dx = None
        if self.need_dx:  # before the update: it needs W as the forward pass saw it
            dx = np.matmul(dy, self.W.T, out=self.dx[:n])
        _update(self, self._x, dy, step)
        return dx

    def macs(self):
        return self.fan_in * self.units

    def activations(self):
        return 2 * self.units + self.fan_in


class ReLU(Layer):
    def setup(self, in_shape, batch, dtype):
        self.mask = np.empty((batch, *in_shape), bool)
        self.y = np.empty((batch, *in_shape), dtype)
        return in_shape

    def forward(self, x, train):
        n = len(x)
        mask, y = self.mask[:n], self.y[:n]
        np.greater(x, 0, out=mask)
        np.multiply(x, mask, out=y)
        return y

    def backward(self, dy, step):
        return np.multiply(dy, self.mask[:len(dy)], out=dy)  # dy is the layer above's buffer: free to reuse

    def activations(self):
        return 2 * int(np.prod(self.y.shape[1:]))


class Tanh(Layer):
    def setup(self, in_shape, batch, dtype):
        self.y = np.empty((batch, *in_shape), dtype)
        self.tmp = np.empty((batch, *in_shape), dtype)
        return in_shape

    def forward(self, x, train):
        return np.tanh(x, out=self.y[:len(x)])

    def backward(self, dy, step):
        n = len(dy)
        y, t = self.y[:n], self.tmp[:n]
        np.multiply(y, y, out=t)
        np.subtract(1, t, out=t)  # 1 - tanh^2
        return np.multiply(dy, t, out=dy)

    def activations(self):
        return 2 * int(np.prod(self.y.shape[1:]))


class Flatten(Layer):
    """(n, H, W, C) -> (n, H*W*C), a view (rows stay contiguous)."""

    def setup(self, in_shape, batch, dtype):
        self.in_shape = in_shape
        return (int(np.prod(in_shape)),)

    def forward(self, x, train):
        return x.reshape(len(x), -1)

    def backward(self, dy, step):
        return dy.reshape(len(dy), *self.in_shape)


class Dropout(Layer):
    """Inverted dropout: in training each value is zeroed with probability p and the rest
    scaled by 1/(1-p); at inference it is the identity. rng: the run's "dropout" stream."""

    def __init__(self, p: float):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = np.random.default_rng(0)

    def setup(self, in_shape, batch, dtype):
        self.keep = np.empty((batch, *in_shape), dtype)
        self.draw = np.empty((batch, *in_shape), np.float32)
        self.y = np.empty((batch, *in_shape), dtype)
        self._train = False
        return in_shape

    def forward(self, x, train):
        self._train = train and self.p > 0
        if not self._train:
            return x
        n = len(x)
        draw, keep = self.draw[:n], self.keep[:n]
        self.rng.random(out=draw, dtype=np.float32)
        np.greater_equal(draw, self.p, out=keep, casting="unsafe")
        keep *= keep.dtype.type(1.0 / (1.0 - self.p))
        return np.multiply(x, keep, out=self.y[:n])

    def backward(self, dy, step):
        if not self._train:
            return dy
        return np.multiply(dy, self.keep[:len(dy)], out=dy)

    def activations(self):
        return 3 * int(np.prod(self.y.shape[1:]))


class MaxPool2(Layer):
    """2x2 max pooling, stride 2: (n, H, W, C) -> (n, H//2, W//2, C) (an odd last row or column
    is dropped). The gradient goes to the first maximum of each window (ties: one only).

    The four corners of the windows are four strided views of x: the max is three elementwise
    maximums (a reduction over a length-4 axis is several times slower), and in training the
    backward pass rebuilds the first-max mask from x and y, kept by reference (x is the layer
    below's buffer, unchanged until the next forward)."""

    def setup(self, in_shape, batch, dtype):
        H, W, C = in_shape
        if H < 2 or W < 2:
            raise ValueError(f"pool needs an input of at least 2x2, got {H}x{W}")
        self.in_shape, self.out_shape = in_shape, (H // 2, W // 2, C)
        Ho, Wo = H // 2, W // 2
        self.y = np.empty((batch, Ho, Wo, C), dtype)
        self.hit = np.empty((batch, Ho, Wo, C), bool)  # this corner is the window's first max
        self.free = np.empty((batch, Ho, Wo, C), bool)  # no earlier corner was
        self.dx = np.zeros((batch, *in_shape), dtype)
        self._x = None
        return self.out_shape

    def _corners(self, a: np.ndarray) -> list[np.ndarray]:
        """(n, H, W, C) -> its 4 window corners, each (n, Ho, Wo, C), in row-major order."""
        Ho, Wo, _ = self.out_shape
        return [a[:, i:2 * Ho:2, j:2 * Wo:2, :] for i in (0, 1) for j in (0, 1)]

    def forward(self, x, train):
        n = len(x)
        a, b, c, d = self._corners(x)
        y = self.y[:n]
        np.maximum(a, b, out=y)
        np.maximum(y, c, out=y)
        np.maximum(y, d, out=y)
        self._x = x if train else None
        return y

    def backward(self, dy, step):
        if self._x is None:
            raise RuntimeError("MaxPool2.backward needs a forward pass in training first")
        n = len(dy)
        y, hit, free = self.y[:n], self.hit[:n], self.free[:n]
        dx = self.dx[:n]  # zeros outside the windows (an odd edge) stay zero
        free[...] = True
        for k, (corner, out) in enumerate(zip(self._corners(self._x), self._corners(dx))):
            np.equal(corner, y, out=hit)
            hit &= free
            if k < 3:
                np.greater(free, hit, out=free)  # free and not hit, in place
            np.multiply(dy, hit, out=out)
        return dx

    def activations(self):
        H, W, C = self.in_shape
        return H * W * C + (H // 2) * (W // 2) * C * 3


class Conv2D(Layer):
    """filters k x k convolutions, stride 1, "valid" (no padding) or "same" (odd k, zero
    padding (k-1)/2): (n, H, W, C) -> (n, Ho, Wo, filters).

    im2col: each output pixel's k x k x C input patch is one row of cols: (n*Ho*Wo, k*k*C),
    columns in (i, j, c) order; the output is cols @ W + b with W: (k*k*C, filters), the same
    sgemm the MLP's dense layers use. In (i, j, c) order the k*C values of a kernel row are
    contiguous in the channels-last input, so im2col is one copy from a strided view whose
    innermost runs are k*C floats long. Backward: d cols = dy @ W.T, summed back into the
    (padded) input row offset by row offset: for a row offset i and a column phase r, the
    windows starting at r, r + k, r + 2k, ... do not overlap, so each is one vectorised add of
    contiguous k*C runs (k*k adds in all, none per image).
    """

    def __init__(self, filters: int, k: int, padding: str = "valid"):
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        if padding == "same" and k % 2 == 0:
            raise ValueError(f"'same' padding needs an odd kernel size, got {k}")
        self.filters, self.k, self.padding = int(filters), int(k), padding

    def setup(self, in_shape, batch, dtype):
        H, W, C = in_shape
        k, p = self.k, (self.k - 1) // 2 if self.padding == "same" else 0
        Ho, Wo = H + 2 * p - k + 1, W + 2 * p - k + 1
        if Ho < 1 or Wo < 1:
            raise ValueError(f"a {k}x{k} convolution needs an input of at least {k}x{k}, got {H}x{W}")
        self.in_shape, self.pad, self.out_shape = in_shape, p, (Ho, Wo, self.filters)
        self.fan_in, self.fan_out = C * k * k, self.filters
        self.xp = np.zeros((batch, H + 2 * p, W + 2 * p, C), dtype) if p else None
        self.cols = np.empty((batch * Ho * Wo, self.fan_in), dtype)
        self.y = np.empty((batch, Ho, Wo, self.filters), dtype)
        self.dcols = np.empty((batch * Ho * Wo, self.fan_in), dtype)
        self.dxp = np.empty((batch, H + 2 * p, W + 2 * p, C), dtype)
        return self.out_shape

    def im2col(self, x: np.ndarray) -> np.ndarray:
        """x: (n, H, W, C) float32 -> cols: (n*Ho*Wo, k*k*C), a view of this layer's buffer."""
        n = len(x)
        H, W, C = self.in_shape
        Ho, Wo, _ = self.out_shape
        k, p = self.k, self.pad
        if p:
            xp = self.xp[:n]  # its border stays zero
            xp[:, p:p + H, p:p + W, :] = x
        else:
            xp = x
        # (n, Ho, Wo, k, k*C) strided view of every patch: patch row i of output pixel (y, x)
        # is the k*C contiguous values from xp[:, y + i, x, 0]; copied once into the cols rows.
        s0, s1, s2, s3 = xp.strides
        patches = np.lib.stride_tricks.as_strided(xp, (n, Ho, Wo, k, k * C), (s0, s1, s2, s1, s3), writeable=False)
        cols = self.cols[:n * Ho * Wo]
        cols.reshape(n, Ho, Wo, k, k * C)[...] = patches
        return cols

    def col2im(self, dcols: np.ndarray) -> np.ndarray:
        """dcols: (n*Ho*Wo, k*k*C) float32 -> dx: (n, H, W, C), each patch summed back where it came from."""
        H, W, C = self.in_shape
        Ho, Wo, _ = self.out_shape
        k, p = self.k, self.pad
        n = len(dcols) // (Ho * Wo)
        d = dcols.reshape(n, Ho, Wo, k, k * C)
        dxp = self.dxp[:n]
        dxp[...] = 0
        for i in range(k):
            for r in range(min(k, Wo)):
                m = len(range(r, Wo, k))  # windows at columns r, r + k, ...: side by side
                dst = dxp[:, i:i + Ho, r:r + m * k, :].reshape(n, Ho, m, k * C)  # a view: (m*k, C) rows merge
                dst += d[:, :, r::k, i, :]
        return dxp[:, p:p + H, p:p + W, :]

    def forward(self, x, train):
        n = len(x)
        Ho, Wo, F = self.out_shape
        self._cols = cols = self.im2col(x)
        y = self.y[:n]
        np.matmul(cols, self.W, out=y.reshape(n * Ho * Wo, F))
        y += self.b
        return y

    def backward(self, dy, step):
        n = len(dy)
        Ho, Wo, F = self.out_shape
        d2d = dy.reshape(n * Ho * Wo, F)
        dcols = np.matmul(d2d, self.W.T, out=self.dcols[:n * Ho * Wo]) if self.need_dx else None
        _update(self, self._cols, d2d, step)
        return self.col2im(dcols) if self.need_dx else None

    def macs(self):
        Ho, Wo, F = self.out_shape
        return Ho * Wo * F * self.fan_in

    def activations(self):
        Ho, Wo, F = self.out_shape
        H, W, C = self.in_shape
        return 2 * Ho * Wo * self.fan_in + Ho * Wo * F + 2 * (H + 2 * self.pad) * (W + 2 * self.pad) * C
