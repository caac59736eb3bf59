"""The Inside page's component: a drawing pad that runs the current network in the browser
(a Components v2 component: the JS modules of JS_MODULES in one string, and ui/inside.css),
and its Python side: the payloads that carry the model (an MLP or a Net, a stack of layers)
and its training snapshots to the browser, and "Keep it", which stores a drawing the way the
Draw page does (ui/mydigits.py), for MNIST models only.

Imports streamlit, numpy, Pillow, mnistnet and the ui layers below (resources, session, views, mydigits).

The browser gets the weights once per page load as float32 bytes (the snapshots as the float16
they are stored in) from two hidden mounts of the component; the visible pad lives in a
fragment, so "Keep it" reruns the fragment only and never sends the weights again. While the
visitor draws, nothing crosses the websocket: preprocessing and the forward pass run in JS.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from mnistnet import MLP, drawing, preprocess_drawing
from mnistnet.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2, ReLU, Tanh
from mnistnet.net import INPUT_SHAPE, Net
from ui import mydigits, resources, session, views

HERE = Path(__file__).parent
# The payload format, read by decodePayload in ui/inside_math.js. 2: a Net's header carries
# its line ("net") and its layer stack ("stack"); an MLP's header is version 1's.
MAGIC, VERSION = b"MNIN", 2
DEAD_SAMPLE = 1000  # a unit silent on all of this many MNIST test images is marked dead
PAYLOAD_KEY = "inside.payload"  # {"entry": the model, "id", "snapshots", "model_bytes", "snapshots_bytes"}
MESSAGE_KEY = "inside.message"  # (kind, text) after "Keep it", shown on the fragment's rerun
KEPT_KEY = "inside.kept"  # {"nonce", "label", "ok"}: Python's answer to the pad's last "Keep it"
MAX_PNG_CHARS = 2_000_000  # a 280x280 RGBA PNG as a data URL is far smaller
PAD = 280  # the pad's size in CSS pixels, as on the Draw page (ui/canvas.py)

# One ES module, in this order: each file's header says what it owns and what it needs from
# the files before it (the math needs nothing; the entry, last, wires the others together).
JS_MODULES = ("inside_math.js", "inside_pad.js", "inside_views.js", "inside_layers.js", "inside_detail.js",
              "inside_epochs.js", "inside.js")
JS = "\n".join((HERE / name).read_text() for name in JS_MODULES)
LAYER_KINDS = {Conv2D: "conv", ReLU: "relu", Tanh: "tanh", MaxPool2: "pool", Flatten: "flatten", Dense: "dense",
               Dropout: "dropout"}  # a Net's layers as the payload names them (makeStack's kinds)
DEAD_CHUNK = 50  # images per forward pass when looking for a Net's dead channels (its training batch)
_component = st.components.v2.component(
    "mnistnet_inside", js=JS, css=(HERE / "inside.css").read_text(), html="<div class='inside-root'></div>")


def _array_spec(arrays: list[np.ndarray], dtype, body: list[bytes], offset: int) -> tuple[list[dict], int]:
    """Append each array's bytes (as `dtype`, padded to 4 bytes) to `body`; their specs."""
    specs = []
    for a in arrays:
        raw = np.ascontiguousarray(a, dtype=dtype).tobytes()
        specs.append({"offset": offset, "count": int(np.size(a)), "dtype": np.dtype(dtype).name})
        raw += b"\0" * (-len(raw) % 4)
        body.append(raw)
        offset += len(raw)
    return specs, offset


def _pack(header: dict, body: list[bytes]) -> bytes:
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    return MAGIC + struct.pack("<II", VERSION, len(text)) + text + b"".join(body)


def dead_units(model: MLP, images: np.ndarray) -> list[list[int]]:
    """Per hidden layer, the units whose ReLU output is 0 on every image. images: (n, 28, 28) uint8."""
    h = model.scale_inputs(images)
    dead = []
    for W, b in zip(model.weights[:-1], model.biases[:-1]):
        h = np.maximum(h @ W + b, 0)  # (n, units) float32
        dead.append(np.flatnonzero(h.max(axis=0) <= 0).tolist())
    return dead


def dead_channels(net: Net, images: np.ndarray) -> list[list[int]]:
    """Per layer of net.template: the channels (last axis) of a ReLU's output, or of a pool or
    dropout fed by one, that are 0 at every position of every image; [] for any other layer.
    images: (n, 28, 28) uint8."""
    # A copy with buffers of its own: a stored model is shared by every session's thread.
    net = Net.from_arrays(net.spec, net.weights, net.biases, net.input_mean, net.input_std)
    layers = net.stack(DEAD_CHUNK)
    peaks: list[np.ndarray | None] = [None] * len(layers)
    for start in range(0, len(images), DEAD_CHUNK):
        h = net.scale_inputs(images[start:start + DEAD_CHUNK])
        h = h.reshape(len(h), *INPUT_SHAPE)
        for i, layer in enumerate(layers):
            h = layer.forward(h, False)
            peak = h.reshape(-1, h.shape[-1]).max(axis=0)  # (channels,) float32
            peaks[i] = peak if peaks[i] is None else np.maximum(peaks[i], peak)
    dead, after_relu = [], False
    for layer, peak in zip(layers, peaks):
        if not isinstance(layer, (MaxPool2, Dropout)):  # these keep what feeds them
            after_relu = isinstance(layer, ReLU)
        dead.append(np.flatnonzero(peak <= 0).tolist() if after_relu and peak is not None else [])
    return dead


def stack_of(net: Net) -> list[dict]:
    """net.template for the browser (makeStack in ui/inside_math.js): per layer its kind, "in"
    and "out" shapes ([H, W, C] channels last, or [n]); a conv's k, pad and param (the index
    of its weights and biases), a dense's param, a dropout's p."""
    out, shape, param = [], tuple(INPUT_SHAPE), 0
    for layer in net.template:
        item = {"kind": LAYER_KINDS[type(layer)], "in": list(shape)}
        if isinstance(layer, Conv2D):
            item.update(k=layer.k, pad=layer.pad, param=param)
            shape, param = layer.out_shape, param + 1
        elif isinstance(layer, Dense):
            item["param"] = param
            shape, param = (layer.units,), param + 1
        elif isinstance(layer, MaxPool2):
            shape = layer.out_shape
        elif isinstance(layer, Flatten):
            shape = (int(np.prod(shape)),)
        elif isinstance(layer, Dropout):
            item["p"] = layer.p
        item["out"] = list(shape)
        out.append(item)
    return out


def model_id(model: MLP | Net) -> str:
    """16 hex digits of the SHA-256 of the model's float32 weights and biases, in payload order
    (a Net's line first): the name the browser keeps its payloads under."""
    h = hashlib.sha256()
    if isinstance(model, Net):
        h.update(model.spec.encode() + b"\0")
    for W, b in zip(model.weights, model.biases):
        for a in (W, b):
            h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def model_payload(model: MLP | Net, images: np.ndarray) -> tuple[str, bytes]:
    """The model for the browser -> (its id: 16 hex digits of the SHA-256 of its weights, bytes).

    Body: W0, b0, W1, b1, ... as float32, W (fan_in, fan_out) row-major (a conv's rows in
    (i, j, c) order). Header: layer sizes, input scaling, preprocessing constants
    (mnistnet/drawing.py) and dead units over `images` (per hidden layer of an MLP); a Net's
    also its line ("net") and layer stack ("stack", stack_of), "dead" then per layer of it
    (dead_channels).
    """
    body: list[bytes] = []
    offset, layers = 0, []
    for W, b in zip(model.weights, model.biases):
        (w_spec, b_spec), offset = _array_spec([W, b], np.float32, body, offset)
        layers.append({"w": w_spec, "b": b_spec})
    digest = model_id(model)
    header = {"kind": "model", "id": digest, "sizes": list(model.layer_sizes), "mean": model.input_mean,
              "std": model.input_std, "layers": layers,
              "preprocess": {"box": drawing.BOX, "field": drawing.FIELD, "centre": drawing.CENTRE,
                             "ink_level": drawing.INK_LEVEL, "min_ink_fraction": drawing.MIN_INK_FRACTION}}
    if isinstance(model, Net):
        header.update(net=model.spec, stack=stack_of(model), dead=dead_channels(model, images))
    else:
        header["dead"] = dead_units(model, images)
    return digest, _pack(header, body)


def snapshot_payload(model_id: str, model: MLP, snapshots, images: np.ndarray) -> bytes:
    """The training snapshots of model `model_id` for the epoch slider: float16 arrays (as the
    store keeps them), in epoch order, each with its dead units over `images`."""
    body: list[bytes] = []
    offset, entries = 0, []
    for s in sorted(snapshots, key=lambda s: s.epoch):
        layers = []
        for W, b in zip(s.weights, s.biases):
            (w_spec, b_spec), offset = _array_spec([W, b], np.float16, body, offset)
            layers.append({"w": w_spec, "b": b_spec})
        net = MLP.from_arrays([np.asarray(w, np.float32) for w in s.weights],
                              [np.asarray(b, np.float32) for b in s.biases], model.input_mean, model.input_std)
        entries.append({"epoch": float(s.epoch), "layers": layers, "dead": dead_units(net, images)})
    return _pack({"kind": "snapshots", "id": model_id, "snapshots": entries}, body)


def _payloads(entry: session.ModelEntry) -> dict:
    """{"id": the model's id (model_payload's), "snapshots": how many} and, built when first
    asked for, "model_bytes" and "snapshots_bytes": once per model and session."""
    cached = st.session_state.get(PAYLOAD_KEY)
    if cached is not None and cached["entry"] is entry.model:
        return cached
    snapshots = 0 if isinstance(entry.model, Net) else len(session.current_snapshots())  # MLPs' only
    cached = {"entry": entry.model, "id": model_id(entry.model), "snapshots": snapshots}
    st.session_state[PAYLOAD_KEY] = cached
    return cached


def _bytes_for(entry: session.ModelEntry, kind: str) -> bytes | None:
    """The payload the pad asked for ("model" or "snapshots"): built once per stored model and
    process (every visitor's browser asks for the same bytes), once per session for an injected one."""
    views.data()  # loaded (with its progress shown) before any cached build reads it
    images = session.test_data(entry).test.images[:DEAD_SAMPLE]  # of the data set the model reads
    if entry.key is not None and session.INJECT_KEY not in st.session_state:
        return _stored_bytes(entry.key, kind, entry.dataset, entry.model, images)
    p, key = _payloads(entry), f"{kind}_bytes"
    if key not in p:
        p[key] = _build(entry.model, p["id"], kind, session.current_snapshots, images)
    return p[key]


@st.cache_resource(max_entries=resources.MODELS_KEPT, show_spinner=False)
def _stored_bytes(key: tuple[int, str], kind: str, dataset: str, _model: MLP | Net,
                  _images: np.ndarray) -> bytes | None:
    """The bytes of a stored model (key: its id and content hash) reading `dataset`, whose
    test images are _images: built once per process."""
    return _build(_model, model_id(_model), kind, lambda: resources.store().model_snapshots(key[0]), _images)


def _build(model: MLP | Net, payload_id: str, kind: str, snapshots, images: np.ndarray) -> bytes | None:
    """model_payload's or snapshot_payload's bytes (None: no snapshots, as for every Net);
    snapshots() lists them; images: (n, 28, 28) uint8 for the dead units."""
    if kind == "model":
        return model_payload(model, images)[1]
    snaps = [] if isinstance(model, Net) else snapshots()
    return snapshot_payload(payload_id, model, snaps, images) if snaps else None


def has_layers(entry: session.ModelEntry) -> bool:
    """Whether `entry`'s model is a stack of layers (a Net: feature maps, no snapshots), not an MLP."""
    return isinstance(entry.model, Net)


def show(entry: session.ModelEntry) -> None:
    """The pad and everything it shows, for `entry`'s model. The bytes of the model and its
    snapshots go to the browser only when the pad asks for them (it keeps them by model id)."""
    p = _payloads(entry)
    why = ("snapshots are kept for dense ReLU networks only" if isinstance(entry.model, Net)
           else "it came from a file without them, or was trained before snapshots were kept")
    _pad(entry, {"model": p["id"], "snapshots": p["snapshots"], "pad": PAD,
                 "no_snapshots": None if p["snapshots"] else (
                     f"This model has no training snapshots ({why}), so there is nothing to replay."),
                 "classes": list(entry.classes), "dataset": entry.dataset_title, "keep": entry.dataset == "mnist"})


@st.fragment
def _pad(entry: session.ModelEntry, meta: dict) -> None:
    result = _component(key="inside.pad", data={**meta, "kept": st.session_state.get(KEPT_KEY)},
                        on_keep_change=_noop, on_need_change=_noop, height="content")
    need = getattr(result, "need", None)
    if isinstance(need, dict) and need.get("id") == meta["model"] and need.get("kind") in ("model", "snapshots"):
        data = _bytes_for(entry, need["kind"])
        if data is not None:  # mounted for this run of the fragment only: the browser keeps it
            with views.hidden("inside-data"):
                _component(key=f"inside.{need['kind']}", data=data, height="content")
    request = getattr(result, "keep", None)
    if request:
        _keep(entry, request)
        st.rerun(scope="fragment")  # the pad hears that its drawing was kept
    if msg := st.session_state.pop(MESSAGE_KEY, None):
        kind, text = msg
        (st.success if kind == "ok" else st.error)(text)
        if kind == "ok":
            st.html(st.session_state.pop("inside.reading", ""))


def _noop() -> None:
    """The trigger reruns the fragment; `_pad` reads it there."""


def drawing_from_png(data_url: str) -> np.ndarray:
    """A 'data:image/png;base64,...' URL of the pad -> (280, 280, 4) uint8 RGBA. ValueError if it is not one."""
    if not isinstance(data_url, str) or len(data_url) > MAX_PNG_CHARS or not data_url.startswith(
            "data:image/png;base64,"):
        raise ValueError("not a PNG data URL of the pad")
    raw = base64.b64decode(data_url.split(",", 1)[1], validate=True)
    try:
        with Image.open(io.BytesIO(raw)) as im:  # lazy: the size is checked before decoding
            if im.format != "PNG" or im.size != (PAD, PAD):
                raise ValueError(f"expected a {PAD}x{PAD} PNG, got {im.format} {im.size}")
            return np.asarray(im.convert("RGBA"), dtype=np.uint8)
    except (OSError, Image.DecompressionBombError) as e:
        raise ValueError(f"not a readable PNG: {e}") from None


def _keep(entry: session.ModelEntry, request) -> None:
    """Store the pad's drawing with the visitor's label (as the Draw page does), and read it on
    the server too: the page says whether the server reads what the browser showed. MNIST
    models only: a drawing is kept as a digit."""
    st.session_state[KEPT_KEY] = {"nonce": str(request.get("nonce", "")) if isinstance(request, dict) else "",
                                  "label": None, "ok": False}
    if entry.dataset != "mnist":  # the pad offers no "Keep it" for these: drawings are kept as digits
        st.session_state[MESSAGE_KEY] = ("error", f"This model reads {entry.dataset_title}: drawings are kept "
                                                  "as digits for MNIST models only.")
        return
    try:
        label, shown = int(request["label"]), int(request["shown"])
        if not 0 <= label <= 9:
            raise ValueError(f"label must be 0-9, got {label}")
        digit = preprocess_drawing(drawing_from_png(request["png"]))
    except (KeyError, TypeError, ValueError):
        st.session_state[MESSAGE_KEY] = ("error", "That drawing could not be read: clear the pad and draw again.")
        return
    if digit is None:
        st.session_state[MESSAGE_KEY] = ("error", "The pad is blank: draw a digit, then keep it.")
        return
    probs = entry.model.predict_proba(digit[None])[0]
    best = int(probs.argmax())
    mydigits.keep(digit, probs, label, entry)
    st.session_state[KEPT_KEY].update(label=label, ok=True)
    st.session_state[MESSAGE_KEY] = ("ok", f"Kept as a {label}: it joins your digits for fine-tuning "
                                           "(on the Draw page).")
    st.session_state["inside.reading"] = (
        f"<div id='inside-server'>The server read the same drawing as "
        f"<b id='inside-server-digit'>{best}</b> ({100 * probs[best]:.1f}%); this page showed "
        f"<b id='inside-shown-digit'>{shown}</b>.</div>")
