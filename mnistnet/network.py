"""The multilayer perceptron: parameters, input scaling, forward, backward.

Imports numpy only. Training math (one SGD step) lives in `Backprop`, whose buffers are
allocated once per batch size and reused for every step: allocating fresh (batch, hidden)
arrays each step costs more than the matrix products at batch 50.
"""

from __future__ import annotations

import numpy as np

N_PIXELS = 784
N_CLASSES = 10
# Mean and standard deviation of the 60,000 official MNIST training pixels, scaled to [0, 1].
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
# The largest network mnistnet saves or loads, and the Train form's limits: beyond these
# one run on 2 cores takes many minutes, and a model file could ask for any amount of memory.
MAX_HIDDEN_LAYERS = 4
MAX_LAYER_SIZE = 2048


def check_layer_sizes(layer_sizes) -> tuple[int, ...]:
    """Validate (784, h1, ..., hk, 10) with k >= 1 and every h >= 1; return it as ints."""
    try:
        sizes = tuple(int(s) for s in layer_sizes)
    except (TypeError, ValueError):
        raise ValueError(f"layer_sizes must be a sequence of integers, got {layer_sizes!r}") from None
    if len(sizes) < 3:
        raise ValueError(f"layer_sizes needs at least one hidden layer, got {sizes}")
    if sizes[0] != N_PIXELS or sizes[-1] != N_CLASSES:
        raise ValueError(f"layer_sizes must start with {N_PIXELS} and end with {N_CLASSES}, got {sizes}")
    for s, raw in zip(sizes, layer_sizes):
        if s < 1 or s != raw:
            raise ValueError(f"every hidden layer size must be an integer >= 1, got {raw!r} in {sizes}")
    return sizes


def parameter_count(layer_sizes) -> int:
    """Weights plus biases of an MLP with these layer sizes."""
    return sum(a * b + b for a, b in zip(layer_sizes[:-1], layer_sizes[1:]))


# 784-2048-2048-2048-2048-10: 14,217,226 parameters, about 57 MB of float32.
MAX_PARAMETERS = parameter_count((N_PIXELS, *[MAX_LAYER_SIZE] * MAX_HIDDEN_LAYERS, N_CLASSES))


def check_model_limits(layer_sizes) -> tuple[int, ...]:
    """check_layer_sizes, then at most MAX_HIDDEN_LAYERS hidden layers of at most MAX_LAYER_SIZE
    units each (so at most MAX_PARAMETERS parameters); return the sizes as ints."""
    sizes = check_layer_sizes(layer_sizes)
    hidden = sizes[1:-1]
    if len(hidden) > MAX_HIDDEN_LAYERS:
        raise ValueError(f"{len(hidden)} hidden layers is over the limit of {MAX_HIDDEN_LAYERS}")
    for s in hidden:
        if s > MAX_LAYER_SIZE:
            raise ValueError(f"hidden layer size {s} is over the limit of {MAX_LAYER_SIZE}")
    return sizes


# Independent random streams derived from one seed: changing how much one of them draws (say,
# turning on augmentation) leaves the others' numbers as they were.
STREAMS = ("init", "shuffle", "augment", "dropout")


def random_stream(seed: int, purpose: str) -> np.random.Generator:
    """The Generator for `purpose` (one of STREAMS) of `seed` (an integer >= 0)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAMS.index(purpose),)))


def log_softmax(z: np.ndarray) -> np.ndarray:
    """z: (n, k) logits -> (n, k) log-probabilities; finite for any finite z (max shift)."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class MLP:
    """Dense ReLU layers, softmax output.

    weights[l]: (layer_sizes[l], layer_sizes[l+1]) float32, uniform in +-1/sqrt(fan_in).
    biases[l]:  (layer_sizes[l+1],) float32, zeros.
    Inputs are scaled by the model itself: x/255 for uint8, then (x - input_mean) / input_std.
    """

    def __init__(self, layer_sizes, seed: int = 0, input_mean: float = MNIST_MEAN,
                 input_std: float = MNIST_STD):
        self._set_up(layer_sizes, input_mean, input_std)
        rng = random_stream(seed, "init")
        for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            bound = 1.0 / np.sqrt(fan_in)
            self.weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32))
            self.biases.append(np.zeros(fan_out, dtype=np.float32))

    def _set_up(self, layer_sizes, input_mean: float, input_std: float) -> None:
        """Everything but the parameters: layer sizes, input scaling, no history."""
        self.layer_sizes = check_layer_sizes(layer_sizes)
        if not (np.isfinite(input_mean) and np.isfinite(input_std) and input_std > 0):
            raise ValueError(f"input scaling needs a finite mean and std > 0, got {input_mean}, {input_std}")
        self.input_mean = float(input_mean)
        self.input_std = float(input_std)
        self.history = None  # the History of the run that trained it, set by train()
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []

    @classmethod
    def from_arrays(cls, weights, biases, input_mean: float = MNIST_MEAN,
                    input_std: float = MNIST_STD) -> MLP:
        """An MLP holding the given parameters, with no random initialisation.

        weights[l]: (n_l, n_{l+1}), biases[l]: (n_{l+1},); the layer sizes are read from the
        shapes. C-contiguous writable float32 arrays are kept as they are (no copy), others
        are copied to that. ValueError names a mismatched shape or a non-finite array.
        """
        weights, biases = list(weights), list(biases)
        if not weights or len(weights) != len(biases):
            raise ValueError(f"need one bias per weight matrix and at least one of each, "
                             f"got {len(weights)} weights and {len(biases)} biases")
        shapes = [np.shape(W) for W in weights]
        if any(len(s) != 2 for s in shapes):
            raise ValueError(f"weights must be 2-D (fan_in, fan_out), got shapes {shapes}")
        model = cls.__new__(cls)
        model._set_up((shapes[0][0], *(s[1] for s in shapes)), input_mean, input_std)
        sizes = model.layer_sizes
        for i, (W, b) in enumerate(zip(weights, biases)):
            if shapes[i] != sizes[i:i + 2] or np.shape(b) != (sizes[i + 1],):
                raise ValueError(f"W{i} {shapes[i]} and b{i} {np.shape(b)} do not fit layer sizes {sizes}")
            W, b = (np.require(a, np.float32, ["C", "W"]) for a in (W, b))
            for key, a in ((f"W{i}", W), (f"b{i}", b)):
                if not np.isfinite(a).all():
                    raise ValueError(f"{key} contains NaN or infinite values")
            model.weights.append(W)
            model.biases.append(b)
        return model

    # -- inputs ---------------------------------------------------------------------------
    def pixel_table(self) -> np.ndarray:
        """(256,) float32: the scaled value of each uint8 pixel (a lookup is faster than math)."""
        return ((np.arange(256, dtype=np.float64) / 255.0 - self.input_mean) / self.input_std).astype(np.float32)

    def scale_inputs(self, X) -> np.ndarray:
        """X: (n, 784) or (n, 28, 28), uint8 0-255 or float in [0, 1] -> (n, 784) float32 scaled."""
        X = np.asarray(X)
        if X.ndim == 2 and X.shape[1] == N_PIXELS:
            pass
        elif X.ndim == 3 and X.shape[1:] == (28, 28):
            X = X.reshape(len(X), N_PIXELS)
        else:
            raise ValueError(f"X must have shape (n, 784) or (n, 28, 28), got {X.shape}")
        if X.dtype == np.uint8:
            return self.pixel_table()[X]
        if not np.issubdtype(X.dtype, np.floating):
            raise ValueError(f"X must be uint8 (0-255) or float in [0, 1], got dtype {X.dtype}")
        if X.size and not (np.isfinite(X).all() and X.min() >= 0.0 and X.max() <= 1.0):
            raise ValueError(f"float X must lie in [0, 1], got range [{X.min()}, {X.max()}]")
        return ((X.astype(np.float32) - np.float32(self.input_mean)) / np.float32(self.input_std))

    # -- inference ------------------------------------------------------------------------
    def logits(self, Xs: np.ndarray) -> np.ndarray:
        """Xs: (n, 784) float32 already scaled -> (n, 10) float32 logits."""
        h = Xs
        last = len(self.weights) - 1
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ W
            h += b
            if i < last:
                np.maximum(h, 0, out=h)
        return h

    def predict_proba(self, X, chunk: int = 10000) -> np.ndarray:
        """X: raw pixels (n, 784) or (n, 28, 28) -> (n, 10) float32 class probabilities."""
        X = np.asarray(X)
        if X.ndim == 2 and X.shape == (28, 28):
            raise ValueError("X must be a batch: pass image[None] for one (28, 28) image")
        out = np.empty((len(X), N_CLASSES), dtype=np.float32)
        for start in range(0, len(X), chunk):
            z = self.logits(self.scale_inputs(X[start:start + chunk]))
            out[start:start + chunk] = np.exp(log_softmax(z))
        return out

    def predict(self, X) -> np.ndarray:
        """X: raw pixels (n, 784) or (n, 28, 28) -> (n,) int64 predicted digits."""
        return self.predict_proba(X).argmax(axis=1).astype(np.int64)

    def parameters(self) -> list[np.ndarray]:
        """All parameter arrays in a fixed order: W0, b0, W1, b1, ..."""
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def copy_parameters(self) -> list[np.ndarray]:
        return [p.copy() for p in self.parameters()]

    def set_parameters(self, params: list[np.ndarray]) -> None:
        for dst, src in zip(self.parameters(), params):
            dst[...] = src


class SoftmaxNLL:
    """The output head both backprops share (Backprop, mnistnet.net.NetBackprop): softmax of the
    last layer's (n, 10) logits in place, and the mean NLL. Needs row_max, row_sum (batch, 1),
    nll (batch,), rows (batch,) int64 buffers and sets _n, _true_shifted."""

    def _softmax(self, h: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        n = len(h)
        self._n = n
        # Softmax in place, shifted by the row maximum so exp never overflows.
        mx, sm = self.row_max[:n], self.row_sum[:n]
        np.maximum.reduce(h, axis=1, keepdims=True, out=mx)
        h -= mx
        # log p_y = (z_y - max) - log(sum exp(z - max)): exact even when p_y underflows to 0.
        self._true_shifted = None if y is None else h[self.rows[:n], y]
        np.exp(h, out=h)
        np.add.reduce(h, axis=1, keepdims=True, out=sm)
        h /= sm
        return h

    def loss(self) -> float:
        """Mean negative log-likelihood over the batch given to forward(X, y)."""
        if self._true_shifted is None:
            raise RuntimeError("loss() needs forward(X, y) with labels")
        n = self._n
        nll = np.log(self.row_sum[:n, 0], out=self.nll[:n])
        nll -= self._true_shifted
        return float(np.add.reduce(nll, dtype=np.float64)) / n


class Backprop(SoftmaxNLL):
    """Forward and backward passes of one model on batches of at most `batch_size` rows.

    Keeps exactly what backward needs: the input, each layer's output activations and each
    hidden layer's ReLU mask. The buffers have the dtype of the model's weights (float32 in
    training, float64 in the gradient check). grad_w[l], grad_b[l] match weights[l],
    biases[l] after `backward`. Every step reuses the buffers: at batch 50 a fresh
    (batch, hidden) array or a generic numpy wrapper (np.sum, np.max) costs about as much
    as the arithmetic, so the hot path calls the ufuncs with out= directly.
    """

    def __init__(self, model: MLP, batch_size: int):
        self.model = model
        dtype = model.weights[0].dtype
        sizes = model.layer_sizes
        # acts[l]: (batch, sizes[l+1]) output of layer l (ReLU applied; softmax for the last).
        self.acts = [np.empty((batch_size, s), dtype=dtype) for s in sizes[1:]]
        # deltas[l]: (batch, sizes[l+1]) gradient of the loss w.r.t. layer l's pre-activation.
        self.deltas = [np.empty((batch_size, s), dtype=dtype) for s in sizes[1:]]
        # masks[l]: (batch, sizes[l+1]) bool, pre-activation > 0 (hidden layers only).
        self.masks = [np.empty((batch_size, s), dtype=bool) for s in sizes[1:-1]]
        self.grad_w = [np.empty_like(W) for W in model.weights]
        self.grad_b = [np.empty_like(b) for b in model.biases]
        self.row_max = np.empty((batch_size, 1), dtype=dtype)
        self.row_sum = np.empty((batch_size, 1), dtype=dtype)
        self.nll = np.empty(batch_size, dtype=dtype)  # (batch,) per-sample loss scratch
        self.rows = np.arange(batch_size)  # (batch,) int64 row numbers for label lookups
        self._x = None
        self._n = 0
        self._true_shifted = None  # (n,) z_y - max z per row, set by forward(X, y)

    def forward(self, X: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """X: (n, 784) scaled inputs, n <= batch_size -> (n, 10) probabilities (a view of a buffer).

        With labels y: (n,) int64, also keeps what `loss` needs.
        """
        n = len(X)
        self._x, self._n = X, n
        h = X
        last = len(self.acts) - 1
        for i, (W, b) in enumerate(zip(self.model.weights, self.model.biases)):
            out = self.acts[i][:n]
            np.matmul(h, W, out=out)
            out += b
            if i < last:
                # ReLU as out * (out > 0): the mask is what backward needs, and multiplying
                # by it is faster than np.maximum(out, 0) against a broadcast scalar.
                mask = self.masks[i][:n]
                np.greater(out, 0, out=mask)
                np.multiply(out, mask, out=out)
            h = out
        return self._softmax(h, y)

    def backward(self, y: np.ndarray, scale: float = 1.0, step=None) -> None:
        """Fill grad_w, grad_b with `scale` times the gradient of the mean NLL over the batch.

        Every gradient is linear in the output error, so plain SGD passes its learning rate
        as `scale` and its update becomes a single subtraction. With `step` (an optimiser
        with `layer(i, inp, d)`, see mnistnet.train), grad_w and grad_b are not filled: each
        layer's inp: (n, fan_in) and d: (n, fan_out) (`scale` times dLoss/dz) go to step.layer
        once the layer below no longer needs the layer's weights, so the optimiser may add the
        product straight into them.
        """
        if self._x is None:
            raise RuntimeError("backward() called before forward()")
        n = self._n
        model = self.model
        last = len(self.acts) - 1
        # Fused softmax + NLL gradient: (probs - onehot) / n, mean over the batch.
        d = self.deltas[last][:n]
        inv_n = d.dtype.type(scale / n)
        np.multiply(self.acts[last][:n], inv_n, out=d)
        d[self.rows[:n], y] -= inv_n
        for i in range(last, -1, -1):
            inp = self._x if i == 0 else self.acts[i - 1][:n]
            if i > 0:  # the error of the layer below, from weights[i] before any update
                prev = self.deltas[i - 1][:n]
                np.matmul(d, model.weights[i].T, out=prev)
            if step is None:
                np.matmul(inp.T, d, out=self.grad_w[i])
                np.add.reduce(d, axis=0, out=self.grad_b[i])
            else:
                step.layer(i, inp, d)
            if i > 0:
                np.multiply(prev, self.masks[i - 1][:n], out=prev)
                d = prev
        self._x = None  # one backward per forward
