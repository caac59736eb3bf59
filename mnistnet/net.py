"""A network described in one line, built from mnistnet.layers, trained by the MLP's loop.

Imports numpy and the core's network and layers modules. The line is layers joined by "-":

    conv 8x5 - pool - conv 16x5 - pool - dense 128

    conv FxK [same|valid] [relu|tanh]   F filters of K x K, stride 1 ("valid": no padding)
    pool                                2x2 max pooling
    dense N [relu|tanh]                 N units
    dropout P                           inverted dropout, 0 <= P < 1

conv and dense are followed by their activation (ReLU unless "tanh" is said); the 10-way
output layer and the flattening before the first dense layer are implied. `build(spec)`
returns an MLP (mnistnet.network) when the line is dense ReLU layers only, so a plain MLP
keeps its own fused code, and a Net otherwise. Errors name the bad token.
"""

from __future__ import annotations

import re
import threading

import numpy as np

from .layers import Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2, ReLU, Tanh
from .network import (
    MAX_PARAMETERS,
    MLP,
    MNIST_MEAN,
    MNIST_STD,
    N_CLASSES,
    SoftmaxNLL,
    check_model_limits,
    log_softmax,
    random_stream,
)

MAX_LAYERS = 12  # tokens of one line
MAX_FILTERS = 128
MAX_KERNEL = 9
MAX_UNITS = 2048
# Floats a training step keeps per image (every layer's buffers): at batch 50 this is at most
# 50 x 4 x 2M = 400 MB, so no line can ask a worker for more than that.
MAX_ACTIVATIONS_PER_IMAGE = 2_000_000
INPUT_SHAPE = (28, 28, 1)

_CONV = re.compile(r"conv\s+(\d+)\s*x\s*(\d+)((?:\s+(?:same|valid|relu|tanh))*)$")
_DENSE = re.compile(r"dense\s+(\d+)((?:\s+(?:relu|tanh))*)$")
_DROPOUT = re.compile(r"dropout\s+(\d*\.?\d+)$")


def parse(spec: str) -> list[tuple]:
    """The line -> [("conv", filters, k, padding, act) | ("pool",) | ("dense", units, act) |
    ("dropout", p)]. ValueError names the first bad token and says what was expected."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("the network is empty: write layers joined by '-', e.g. 'conv 8x5 - pool - dense 128'")
    if len(spec) > 400:
        raise ValueError(f"the network's description is {len(spec)} characters, over the limit of 400")
    tokens = [t.strip().lower() for t in spec.split("-")]
    if len(tokens) > MAX_LAYERS:
        raise ValueError(f"{len(tokens)} layers is over the limit of {MAX_LAYERS}")
    out = []
    for tok in tokens:
        words = " ".join(tok.split())
        if m := _CONV.match(words):
            f, k, rest = int(m[1]), int(m[2]), m[3].split()
            if not 1 <= f <= MAX_FILTERS:
                raise ValueError(f"'{tok}': filters must be 1 to {MAX_FILTERS}, got {f}")
            if not 1 <= k <= MAX_KERNEL:
                raise ValueError(f"'{tok}': kernel size must be 1 to {MAX_KERNEL}, got {k}")
            padding = "same" if "same" in rest else "valid"
            if padding == "same" and k % 2 == 0:
                raise ValueError(f"'{tok}': 'same' padding needs an odd kernel size, got {k}")
            out.append(("conv", f, k, padding, "tanh" if "tanh" in rest else "relu"))
        elif words == "pool":
            out.append(("pool",))
        elif m := _DENSE.match(words):
            units = int(m[1])
            if not 1 <= units <= MAX_UNITS:
                raise ValueError(f"'{tok}': units must be 1 to {MAX_UNITS}, got {units}")
            out.append(("dense", units, "tanh" if "tanh" in m[2] else "relu"))
        elif m := _DROPOUT.match(words):
            p = float(m[1])
            if not 0 <= p < 1:
                raise ValueError(f"'{tok}': a dropout rate must be at least 0 and below 1, got {p:g}")
            out.append(("dropout", p))
        else:
            raise ValueError(f"'{tok}' is not a layer: expected 'conv FxK', 'pool', 'dense N' or 'dropout P'")
    if any(t[0] in ("conv", "pool") for t in out[next((i for i, t in enumerate(out) if t[0] == "dense"),
                                                      len(out)):]):
        raise ValueError("conv and pool layers must come before the first dense layer")
    return out


def canonical(spec: str) -> str:
    """The line as this module writes it: 'conv 8x5 - pool - dense 128' (defaults left out)."""
    words = []
    for t in parse(spec):
        if t[0] == "conv":
            same, tanh = " same" if t[3] == "same" else "", " tanh" if t[4] == "tanh" else ""
            words.append(f"conv {t[1]}x{t[2]}{same}{tanh}")
        elif t[0] == "dense":
            words.append(f"dense {t[1]}" + (" tanh" if t[2] == "tanh" else ""))
        elif t[0] == "dropout":
            words.append(f"dropout {t[1]:g}")
        else:
            words.append("pool")
    return " - ".join(words)


def mlp_sizes(spec: str) -> tuple[int, ...] | None:
    """(784, h1, ..., 10) when the line is dense ReLU layers only (an MLP), else None."""
    layers = parse(spec)
    if all(t[0] == "dense" and t[2] == "relu" for t in layers):
        return (28 * 28, *(t[1] for t in layers), N_CLASSES)
    return None


def plan(spec: str) -> Net:
    """A Net of the line without its parameters (and no buffers): its spec, layer_sizes,
    template layers' shapes and macs(), checked against every limit; ValueError names a bad
    token or limit. Nothing the line asks for is allocated."""
    net = Net.__new__(Net)
    net._plan(spec, MNIST_MEAN, MNIST_STD, np.float32)
    return net


def param_shapes(spec: str) -> list[tuple[tuple[int, int], tuple[int]]]:
    """The (W shape, b shape) of each conv and dense layer of the line, in order, computed
    without allocating them; ValueError names a bad token or limit."""
    return [((layer.fan_in, layer.fan_out), (layer.fan_out,)) for layer in plan(spec).params]


def run_layout(arch) -> tuple[tuple[int, ...], dict]:
    """arch: hidden widths (a tuple) or a line -> (the layer sizes a run records, what its spec
    says of the network: {"net": line} for a line, the worker builds it from there; else {})."""
    if isinstance(arch, str):
        return tuple(plan(arch).layer_sizes), {"net": arch}
    return (784, *arch, 10), {}


def line_of(hidden) -> str:
    """Hidden widths (h1, h2, ...) -> the MLP's line 'dense h1 - dense h2 - ...'."""
    return " - ".join(f"dense {int(h)}" for h in hidden)


def describe(model) -> str:
    """How the pages and the CLI name a model: an MLP's sizes '784-512-256-10', a Net's line."""
    return model.spec if isinstance(model, Net) else "-".join(map(str, model.layer_sizes))


def model_for(arch, seed: int = 0):
    """`arch`: a line (str) or hidden widths (a tuple) -> a new MLP or Net, as build."""
    return build(arch if isinstance(arch, str) else line_of(arch), seed)


def build(spec: str, seed: int = 0):
    """An MLP for a line of dense ReLU layers, else a Net; ValueError names a bad token or limit."""
    sizes = mlp_sizes(spec)
    if sizes is not None:
        check_model_limits(sizes)
        return MLP(sizes, seed=seed)
    return Net(spec, seed=seed)


class Net:
    """A stack of layers with a softmax output, its inputs scaled like an MLP's.

    weights[l], biases[l]: the parameters of the l-th conv or dense layer, float32, W as the
    (fan_in, fan_out) matrix that feeds sgemm (a conv's fan_in is k*k*C, rows in (i, j, c) order). Inputs (n, 784)
    scaled float32 are read as (n, 28, 28, 1) images. parameters(), copy_parameters(),
    set_parameters(), scale_inputs(), pixel_table(), predict_proba(), predict() behave as
    the MLP's, so mnistnet.train trains either.
    """

    pixel_table = MLP.pixel_table
    scale_inputs = MLP.scale_inputs
    parameters = MLP.parameters
    copy_parameters = MLP.copy_parameters

    def __init__(self, spec: str, seed: int = 0, input_mean: float = MNIST_MEAN, input_std: float = MNIST_STD,
                 dtype=np.float32):
        self._plan(spec, input_mean, input_std, dtype)
        rng = random_stream(seed, "init")
        for layer in self.params:
            layer.init(rng, self.dtype)
        self.weights = [layer.W for layer in self.params]
        self.biases = [layer.b for layer in self.params]

    def _plan(self, spec: str, input_mean: float, input_std: float, dtype) -> None:
        """Everything but the parameters: the layers' shapes (nothing large allocated) and the
        limits, checked before any array the line asks for exists."""
        self.spec = canonical(spec)
        if not (np.isfinite(input_mean) and np.isfinite(input_std) and input_std > 0):
            raise ValueError(f"input scaling needs a finite mean and std > 0, got {input_mean}, {input_std}")
        self.input_mean, self.input_std = float(input_mean), float(input_std)
        self.history, self.snapshots = None, []
        self.dtype = np.dtype(dtype)
        layers = _layers(parse(self.spec))
        shape = INPUT_SHAPE
        for layer in layers:  # batch 0: shapes only
            shape = layer.setup(shape, 0, self.dtype)
        self.out_shape = shape
        self.params = [layer for layer in layers if isinstance(layer, (Dense, Conv2D))]
        for i, layer in enumerate(self.params):
            layer.index = i
        self.template = layers
        n = sum(layer.parameter_count() for layer in self.params)
        if n > MAX_PARAMETERS:
            raise ValueError(f"'{self.spec}' has {n:,} parameters, over the limit of {MAX_PARAMETERS:,}")
        acts = sum(layer.activations() for layer in layers)
        if acts > MAX_ACTIVATIONS_PER_IMAGE:
            raise ValueError(f"'{self.spec}' keeps {acts:,} values per image in training, over the limit of "
                             f"{MAX_ACTIVATIONS_PER_IMAGE:,}: use fewer filters or more pooling")
        flat = next((int(np.prod(layer.in_shape)) for layer in layers if isinstance(layer, Flatten)), None)
        self.layer_sizes = (784, *([flat] if flat else []), *(layer.units for layer in self.params
                                                               if isinstance(layer, Dense)))
        self._stacks: dict[int, list[Layer]] = {}
        # One stored model serves many sessions at once: inference runs through shared
        # buffers, so one call at a time (a drawing's answer takes milliseconds).
        self._infer = threading.Lock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_infer")
        state["_stacks"] = {}  # buffers, remade where needed
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._infer = threading.Lock()

    @classmethod
    def from_arrays(cls, spec: str, weights, biases, input_mean: float = MNIST_MEAN,
                    input_std: float = MNIST_STD) -> Net:
        """The Net of `spec` holding the given parameters (no random initialisation).
        weights[l]: param_shapes(spec)[l][0], biases[l]: its [1]; float32 C-contiguous writable
        arrays are kept as they are. ValueError names a mismatched shape or non-finite array."""
        net = cls.__new__(cls)
        net._plan(spec, input_mean, input_std, np.float32)
        weights, biases = list(weights), list(biases)
        if len(weights) != len(net.params) or len(biases) != len(net.params):
            raise ValueError(f"'{net.spec}' has {len(net.params)} weight matrices and bias vectors, "
                             f"got {len(weights)} and {len(biases)}")
        for i, (layer, W, b) in enumerate(zip(net.params, weights, biases)):
            if np.shape(W) != (layer.fan_in, layer.fan_out) or np.shape(b) != (layer.fan_out,):
                raise ValueError(f"W{i} {np.shape(W)} and b{i} {np.shape(b)} do not fit '{net.spec}', "
                                 f"which needs {(layer.fan_in, layer.fan_out)} and {(layer.fan_out,)}")
            layer.W, layer.b = (np.require(a, np.float32, ["C", "W"]) for a in (W, b))
            for key, a in ((f"W{i}", layer.W), (f"b{i}", layer.b)):
                if not np.isfinite(a).all():
                    raise ValueError(f"{key} contains NaN or infinite values")
        net.weights = [layer.W for layer in net.params]
        net.biases = [layer.b for layer in net.params]
        return net

    def macs(self) -> int:
        """Multiply-adds of one image's forward pass."""
        return sum(layer.macs() for layer in self.template)

    def stack(self, batch: int) -> list[Layer]:
        """Fresh layer objects with buffers for `batch` rows, sharing this net's parameters."""
        if batch not in self._stacks:
            layers = _layers(parse(self.spec))
            shape = INPUT_SHAPE
            for layer in layers:
                shape = layer.setup(shape, batch, self.dtype)
            for layer, W, b, i in zip([la for la in layers if isinstance(la, (Dense, Conv2D))],
                                      self.weights, self.biases, range(len(self.weights))):
                layer.W, layer.b, layer.index = W, b, i
            layers[0].need_dx = False
            self._stacks = {batch: layers} | {k: v for k, v in self._stacks.items() if k != batch}
        return self._stacks[batch]

    def set_parameters(self, params) -> None:
        """Copy `params` (parameters()' order) into this net's arrays, in place: every stack shares them."""
        MLP.set_parameters(self, params)

    def logits(self, Xs: np.ndarray, chunk: int = 500) -> np.ndarray:
        """Xs: (n, 784) scaled -> (n, 10) logits, `chunk` rows at a time (im2col's memory)."""
        out = np.empty((len(Xs), N_CLASSES), self.dtype)
        with self._infer:  # the stack's buffers are this net's, not this call's
            layers = self.stack(min(chunk, max(len(Xs), 1)))
            for start in range(0, len(Xs), chunk):
                h = Xs[start:start + chunk]
                h = h.reshape(len(h), *INPUT_SHAPE)
                for layer in layers:
                    h = layer.forward(h, False)
                out[start:start + len(h)] = h
        return out

    def predict_proba(self, X, chunk: int = 500) -> np.ndarray:
        """X: raw pixels (n, 784) or (n, 28, 28) -> (n, 10) float32 class probabilities."""
        X = np.asarray(X)
        if X.ndim == 2 and X.shape == (28, 28):
            raise ValueError("X must be a batch: pass image[None] for one (28, 28) image")
        return np.exp(log_softmax(self.logits(self.scale_inputs(X), chunk))).astype(np.float32)

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1).astype(np.int64)


def _layers(tokens: list[tuple]) -> list[Layer]:
    layers: list[Layer] = []
    flat = False
    for t in tokens:
        if t[0] == "conv":
            layers += [Conv2D(t[1], t[2], t[3]), Tanh() if t[4] == "tanh" else ReLU()]
        elif t[0] == "pool":
            layers.append(MaxPool2())
        elif t[0] == "dropout":
            layers.append(Dropout(t[1]))
        else:
            if not flat:
                layers.append(Flatten())
                flat = True
            layers += [Dense(t[1]), Tanh() if t[2] == "tanh" else ReLU()]
    if not flat:
        layers.append(Flatten())
    layers.append(Dense(N_CLASSES))
    return layers


class NetBackprop(SoftmaxNLL):
    """Backprop's interface (forward, loss, backward) for a Net: softmax and NLL on top of the
    stack, the output error times `scale` (the learning rate) going down through every layer."""

    def __init__(self, net: Net, batch_size: int, seed: int = 0):
        self.net, self.layers = net, net.stack(batch_size)
        drop = random_stream(seed, "dropout")
        for layer in self.layers:
            if isinstance(layer, Dropout):
                layer.rng = drop
        dtype = net.dtype
        self.delta = np.empty((batch_size, N_CLASSES), dtype)
        self.row_max = np.empty((batch_size, 1), dtype)
        self.row_sum = np.empty((batch_size, 1), dtype)
        self.nll = np.empty(batch_size, dtype)
        self.rows = np.arange(batch_size)
        self._n, self._probs, self._true_shifted = 0, None, None

    def forward(self, X: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """X: (n, 784) scaled -> (n, 10) probabilities (a buffer view); with labels, keeps the loss."""
        n = len(X)
        h = X.reshape(n, *INPUT_SHAPE)
        for layer in self.layers:
            h = layer.forward(h, True)
        self._probs = self._softmax(h, y)
        return self._probs

    def backward(self, y: np.ndarray, scale: float = 1.0, step=None) -> None:
        """As Backprop.backward: with `step` the optimiser updates each layer as the error
        passes it; without, each parameter layer's grad_w, grad_b hold scale x the gradient."""
        if self._probs is None:
            raise RuntimeError("backward() called before forward()")
        n = self._n
        d = self.delta[:n]
        inv_n = d.dtype.type(scale / n)
        np.multiply(self._probs, inv_n, out=d)
        d[self.rows[:n], y] -= inv_n
        for layer in reversed(self.layers):
            d = layer.backward(d, step)
        self._probs = None
