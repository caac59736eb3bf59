"""The Inside page's JavaScript (ui/inside_math.js, run by Node 20) against its Python twins on
the same pixels: the preprocessing against `preprocess_drawing`, the forward passes against
`MLP.predict_proba` (two and three hidden layers) and `Net.predict_proba` (stacks of conv,
pool, dense, tanh and dropout layers), for networks trained here on real MNIST.

Drawings are strokes rasterised by Pillow (anti-aliased by 4x supersampling), so both sides get
the very same RGBA bytes; the browser test (tests/test_browser_inside.py) covers the real canvas.
"""

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnistnet import MLP, TrainConfig, drawing, load_mnist, preprocess_drawing, train
from mnistnet.data import MNIST, Split
from mnistnet.net import Net
from ui import inside

ROOT = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")
SIZE = 280

# Strokes in canvas pixels, (pen width, [polylines]): digits as a hand might draw them, in
# different places and sizes, thin and thick pens, and shapes that stress the crop and resize.
DRAWINGS = {
    "one": (20, [[(145, 45), (140, 235)]]),
    "zero": (22, [[(140 + 65 * math.sin(a), 140 - 95 * math.cos(a)) for a in
                   [2 * math.pi * k / 40 for k in range(42)]]]),
    "seven": (18, [[(70, 55), (210, 55), (185, 110), (155, 170), (130, 235)]]),
    "four": (20, [[(150, 40), (80, 160), (205, 160)], [(175, 100), (175, 240)]]),
    "small three": (8, [[(30, 30), (70, 25), (80, 45), (55, 60), (85, 75), (75, 100), (30, 100)]]),
    "wide two": (30, [[(20, 90), (140, 40), (260, 90), (30, 230), (265, 235)]]),
    "corner nine": (14, [[(230, 200), (190, 180), (200, 150), (240, 160), (232, 200), (225, 272)]]),
    "thin eight": (9, [[(140 + 40 * math.sin(a), 95 - 45 * math.cos(a)) for a in
                        [2 * math.pi * k / 30 for k in range(31)]],
                       [(140 + 50 * math.sin(a), 190 - 50 * math.cos(a)) for a in
                        [2 * math.pi * k / 30 for k in range(31)]]]),
    "dash": (12, [[(60, 140), (220, 141)]]),
    "six": (24, [[(170, 40), (110, 110), (95, 190), (140, 235), (185, 200), (165, 150), (105, 170)]]),
}


def rasterise(pen: int, lines, scale: int = 4) -> np.ndarray:
    """White strokes with round ends on opaque black -> (280, 280, 4) uint8, anti-aliased."""
    big = Image.new("L", (SIZE * scale, SIZE * scale), 0)
    d = ImageDraw.Draw(big)
    r = pen * scale / 2
    for line in lines:
        pts = [(x * scale, y * scale) for x, y in line]
        d.line(pts, fill=255, width=pen * scale)
        for x, y in pts:
            d.ellipse((x - r, y - r, x + r, y + r), fill=255)
    grey = np.asarray(big.resize((SIZE, SIZE), Image.BOX))
    return np.dstack([grey, grey, grey, np.full_like(grey, 255)])


def variants() -> dict[str, np.ndarray]:
    """Each drawing white on black, plus three in the other forms preprocess_drawing reads."""
    out = {name: rasterise(pen, lines) for name, (pen, lines) in DRAWINGS.items()}
    seven = out["seven"]
    out["seven dark on white"] = np.dstack([255 - seven[..., :3], seven[..., 3:]])
    out["seven red on transparent"] = np.dstack([np.full_like(seven[..., :3], (220, 30, 30)), seven[..., 0]])
    out["blank"] = np.zeros_like(seven) + np.array([0, 0, 0, 255], np.uint8)
    return out


def ink_region(rgba: np.ndarray, margin: int = 3):
    """(x, y, w, h) around the ink, as the pad passes the region its strokes touched."""
    ys, xs = np.nonzero(rgba[..., :3].max(axis=2))
    if len(xs) == 0:
        return 0, 0, 1, 1
    x0, y0 = max(0, xs.min() - margin), max(0, ys.min() - margin)
    x1, y1 = min(SIZE, xs.max() + 1 + margin), min(SIZE, ys.max() + 1 + margin)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


RUNNER = """
import { readFileSync, writeFileSync } from "node:fs";
import { decodePayload, makePreprocessor, makeNetwork, makeStack } from "./inside_math.mjs";
const [payloadPath, imagesPath, regionsPath, outPath, digitsPath, digitsOutPath] = process.argv.slice(2);
const p = decodePayload(new Uint8Array(readFileSync(payloadPath)));
const h = p.header;
// As the page does (ui/inside.js, setModel): a stack of layers when the header has one.
const net = h.stack ? makeStack(h, p.weights, p.biases) : makeNetwork(h.sizes, h.mean, h.std, p.weights, p.biases);
const pre = makePreprocessor(280, 280, h.preprocess);
const all = new Uint8Array(readFileSync(imagesPath));
const regions = JSON.parse(readFileSync(regionsPath, "utf8"));
const out = [];
regions.forEach(([x, y, w, hh], k) => {
  const img = all.subarray(k * 280 * 280 * 4, (k + 1) * 280 * 280 * 4);
  const full = pre.run(img, 0, 0, 280, 280);
  const fullDigit = full && Array.from(full);
  // The pad passes only the region its strokes touched: copy it out as getImageData would.
  const reg = new Uint8Array(w * hh * 4);
  for (let r = 0; r < hh; r++) reg.set(img.subarray(((y + r) * 280 + x) * 4, ((y + r) * 280 + x + w) * 4), r * w * 4);
  const part = pre.run(reg, x, y, w, hh);
  const partDigit = part && Array.from(part);
  const probs = fullDigit ? Array.from(net.forward(Uint8Array.from(fullDigit))) : null;
  out.push({ digit: fullDigit, region_digit: partDigit, probs });
});
writeFileSync(outPath, JSON.stringify(out));
if (digitsPath) { // 28 x 28 digits straight into the forward pass: (n * 784) bytes
  const digits = new Uint8Array(readFileSync(digitsPath)), probs = [];
  for (let k = 0; k < digits.length / 784; k++) {
    probs.push(Array.from(net.forward(digits.subarray(k * 784, (k + 1) * 784))));
  }
  writeFileSync(digitsOutPath, JSON.stringify(probs));
}
"""


def run_js(tmp_path: Path, model, images: dict[str, np.ndarray], digits: np.ndarray | None = None,
           payload: bytes | None = None) -> list[dict]:
    """RUNNER on `model`'s payload (or the given bytes): each drawing preprocessed and read.
    With digits ((n, 28, 28) uint8), also their probabilities, in tmp_path / "digits.json"."""
    assert NODE, "node is missing: install Node 20 (apt-get install -y nodejs); this test never skips"
    (tmp_path / "inside_math.mjs").write_text((ROOT / "ui" / "inside_math.js").read_text())
    (tmp_path / "run.mjs").write_text(RUNNER)
    if payload is None:
        _, payload = inside.model_payload(model, np.zeros((2, 28, 28), np.uint8))
    (tmp_path / "model.bin").write_bytes(payload)
    (tmp_path / "images.bin").write_bytes(b"".join(a.tobytes() for a in images.values()))
    (tmp_path / "regions.json").write_text(json.dumps([ink_region(a) for a in images.values()]))
    args = ["model.bin", "images.bin", "regions.json", "out.json"]
    if digits is not None:
        (tmp_path / "digits.bin").write_bytes(np.ascontiguousarray(digits, np.uint8).tobytes())
        args += ["digits.bin", "digits.json"]
    subprocess.run([NODE, "run.mjs", *args], cwd=tmp_path, check=True, timeout=300)
    return json.loads((tmp_path / "out.json").read_text())


@pytest.fixture(scope="module")
def mnist10k():
    d = load_mnist()
    return MNIST(Split(d.train.images[:10000], d.train.labels[:10000]), d.val, d.test)


@pytest.fixture(scope="module", params=[(64, 32), (48, 32, 24)], ids=["784-64-32-10", "784-48-32-24-10"])
def model(request, mnist10k):
    net = MLP((784, *request.param, 10), seed=1)
    train(net, mnist10k, TrainConfig(epochs=1, learning_rate=0.1))
    return net


def test_js_preprocessing_and_forward_agree_with_python(tmp_path, model):
    assert_parity(model, run_js(tmp_path, model, variants()))


def assert_parity(model, results) -> float:
    """Each drawing of variants() as RUNNER read it against Python: pixels within 1 grey level
    (99% equal), probabilities within 1e-4 and the same answer. -> the largest probability error."""
    images = variants()
    read, worst = 0, 0.0
    for (name, rgba), res in zip(images.items(), results):
        want = preprocess_drawing(rgba)
        if want is None:
            assert res["digit"] is None and res["region_digit"] is None, name
            continue
        got = np.array(res["digit"], np.int16).reshape(28, 28)
        diff = np.abs(got - want.astype(np.int16))
        assert diff.max() <= 1, f"{name}: a pixel differs by {diff.max()} grey levels"
        assert (diff == 0).mean() >= 0.99, f"{name}: only {(diff == 0).mean():.3f} of pixels equal"
        assert res["region_digit"] == res["digit"], f"{name}: the region path differs from the whole canvas"
        p_py = model.predict_proba(want[None])[0]
        p_js = np.array(res["probs"])
        assert np.abs(p_js - model.predict_proba(got.astype(np.uint8)[None])[0]).max() <= 1e-4, name
        assert np.abs(p_js - p_py).max() <= 1e-4, f"{name}: probabilities differ by {np.abs(p_js - p_py).max()}"
        assert p_js.argmax() == p_py.argmax(), name
        worst = max(worst, float(np.abs(p_js - p_py).max()))
        read += 1
    assert read == len(images) - 1  # every drawing but the blank one was read on both sides
    return worst


def test_parity_follows_the_centre_constant(tmp_path, model, monkeypatch):
    """The JS takes CENTRE from the payload: with another centre both sides move together."""
    other = 13.5 if drawing.CENTRE != 13.5 else 14.0
    monkeypatch.setattr(drawing, "CENTRE", other)
    images = {k: v for k, v in variants().items() if k in ("seven", "small three", "corner nine")}
    for (name, rgba), res in zip(images.items(), run_js(tmp_path, model, images)):
        want = preprocess_drawing(rgba)
        got = np.array(res["digit"], np.int16).reshape(28, 28)
        assert np.abs(got - want).max() <= 1 and (got == want).mean() >= 0.99, name


def test_payload_round_trips_float32_weights(tmp_path, model):
    """The bytes the browser gets hold the model's float32 weights exactly, with their shapes."""
    model_id, payload = inside.model_payload(model, np.zeros((2, 28, 28), np.uint8))
    assert payload[:4] == b"MNIN"
    hlen = int.from_bytes(payload[8:12], "little")
    header = json.loads(payload[12:12 + hlen])
    assert header["id"] == model_id and header["sizes"] == list(model.layer_sizes)
    body = payload[12 + hlen:]
    for W, spec in zip(model.weights, header["layers"]):
        w = spec["w"]
        got = np.frombuffer(body, np.float32, w["count"], w["offset"]).reshape(W.shape)
        assert np.array_equal(got, W)


# -- stacks of layers (mnistnet.net.Net) ----------------------------------------------------

STACKS = {  # a LeNet-like ReLU stack, "same" padding with tanh, dropout between and after
    "lenet": ("conv 8x5 - pool - conv 16x5 - pool - dense 64", 5000),
    "same-tanh": ("conv 6x3 same tanh - pool - conv 8x5 same tanh - pool - dense 32 tanh", 3000),
    "dropout": ("conv 8x5 - dropout 0.25 - pool - dense 48 - dropout 0.5", 3000),
}


@pytest.fixture(scope="module", params=list(STACKS), ids=list(STACKS))
def stack_model(request, mnist10k):
    """A Net trained one epoch on the first few thousand real MNIST training images."""
    spec, n = STACKS[request.param]
    data = MNIST(Split(mnist10k.train.images[:n], mnist10k.train.labels[:n]), mnist10k.val, mnist10k.test)
    net = Net(spec, seed=1)
    train(net, data, TrainConfig(epochs=1, learning_rate=0.05, momentum=0.9))
    acc = float((net.predict(data.test.images[:1000]) == data.test.labels[:1000]).mean())
    assert acc > 0.8, f"'{spec}' learned too little to test with: {acc:.3f}"
    return request.param, net


def test_js_stack_forward_agrees_with_python(tmp_path, stack_model, mnist10k):
    """makeStack against Net.predict_proba: the drawings (preprocessed on both sides, as the
    MLP's test), and 300 MNIST test digits straight into both forward passes."""
    name, net = stack_model
    digits = mnist10k.test.images[:300]
    worst = assert_parity(net, run_js(tmp_path, net, variants(), digits))
    p_js = np.array(json.loads((tmp_path / "digits.json").read_text()))
    p_py = net.predict_proba(digits)
    err = float(np.abs(p_js - p_py).max())
    assert err <= 1e-4, f"{name}: probabilities of MNIST test digits differ by {err}"
    assert (p_js.argmax(axis=1) == p_py.argmax(axis=1)).all(), name
    print(f"\n{net.spec}: JS against Python, largest probability difference {max(worst, err):.2e} "
          f"(drawings {worst:.2e}, 300 test digits {err:.2e})")


def header_of(payload: bytes) -> tuple[dict, bytes]:
    assert payload[:4] == b"MNIN"
    hlen = int.from_bytes(payload[8:12], "little")
    return json.loads(payload[12:12 + hlen]), payload[12 + hlen:]


def test_a_stack_payload_carries_its_line_layers_and_float32_weights(stack_model):
    _, net = stack_model
    model_id, payload = inside.model_payload(net, np.zeros((2, 28, 28), np.uint8))
    assert int.from_bytes(payload[4:8], "little") == inside.VERSION == 2
    header, body = header_of(payload)
    assert header["id"] == model_id and header["net"] == net.spec
    kinds = [layer["kind"] for layer in header["stack"]]
    assert len(kinds) == len(net.template) == len(header["dead"])
    assert kinds[-1] == "dense" and header["stack"][-1]["out"] == [10] and header["stack"][0]["in"] == [28, 28, 1]
    for a, b in zip(header["stack"], header["stack"][1:]):
        assert a["out"] == b["in"]
    convs = [la for la in header["stack"] if la["kind"] == "conv"]
    assert [c["out"][2] for c in convs] == [W.shape[1] for W in net.weights[:len(convs)]]
    for W, b, spec in zip(net.weights, net.biases, header["layers"]):
        got = np.frombuffer(body, np.float32, spec["w"]["count"], spec["w"]["offset"]).reshape(W.shape)
        assert np.array_equal(got, W)
        assert np.array_equal(np.frombuffer(body, np.float32, spec["b"]["count"], spec["b"]["offset"]), b)


def test_a_stacks_id_depends_on_its_line():
    """Two lines can share every array's bytes (a dropout changes no parameter): not their id."""
    a = Net("conv 4x5 - pool - dense 16", seed=0)
    b = Net.from_arrays("conv 4x5 - pool - dropout 0.5 - dense 16", a.weights, a.biases)
    assert inside.model_id(a) != inside.model_id(b)


def test_dead_channels_are_those_silent_on_every_image(mnist10k):
    net = Net("conv 4x3 - pool - conv 4x3 tanh - pool - dense 8 - dropout 0.5", seed=0)
    net.biases[0][2] = -1e3  # channel 2 of the first conv never fires
    net.biases[2][:] = 1e3  # every unit of the dense layer fires ...
    net.biases[2][5] = -1e3  # but unit 5
    dead = inside.dead_channels(net, mnist10k.test.images[:100])
    kinds = [la["kind"] for la in inside.stack_of(net)]
    assert kinds == ["conv", "relu", "pool", "conv", "tanh", "pool", "flatten", "dense", "relu", "dropout", "dense"]
    assert dead[1] == [2] and dead[2] == [2]  # the ReLU and the pool it feeds
    assert dead[8] == [5] and dead[9] == [5]  # the dense ReLU and the dropout after it
    assert all(dead[i] == [] for i in (0, 3, 4, 5, 6, 7, 10))  # no ReLU there: nothing is dead


BAD_STACK = """
import { readFileSync } from "node:fs";
import { decodePayload, makeStack } from "./inside_math.mjs";
const p = decodePayload(new Uint8Array(readFileSync("model.bin")));
const cases = {
  "a wrong output shape": (h) => { h.stack[0].out = [25, 25, 4]; },
  "a broken chain": (h) => { h.stack[2].in = [11, 11, 4]; },
  "too few weights": (h) => { h.stack[0].k = 3; h.stack[0].out = [26, 26, 4]; },
  "a kind it does not know": (h) => { h.stack[1].kind = "softplus"; },
  "too much padding": (h) => { h.stack[0].pad = 3; },
  "no output layer": (h) => { h.stack.pop(); },
};
const out = {};
for (const [name, spoil] of Object.entries(cases)) {
  const h = JSON.parse(JSON.stringify(p.header));
  spoil(h);
  try { makeStack(h, p.weights, p.biases); out[name] = null; } catch (e) { out[name] = e.message; }
}
console.log(JSON.stringify(out));
"""


def test_make_stack_refuses_a_stack_that_does_not_fit(tmp_path):
    """The browser checks every layer's shapes against its neighbours and its arrays."""
    net = Net("conv 4x5 - pool - dense 16", seed=0)
    (tmp_path / "inside_math.mjs").write_text((ROOT / "ui" / "inside_math.js").read_text())
    (tmp_path / "model.bin").write_bytes(inside.model_payload(net, np.zeros((2, 28, 28), np.uint8))[1])
    (tmp_path / "bad.mjs").write_text(BAD_STACK)
    got = json.loads(subprocess.run([NODE, "bad.mjs"], cwd=tmp_path, check=True, capture_output=True, text=True,
                                    timeout=60).stdout)
    assert got["a wrong output shape"].startswith("layer 0 (conv): output [25,25,4]"), got
    assert got["a broken chain"].startswith("layer 2 (pool): input [11,11,4]"), got
    assert got["too few weights"].startswith("layer 0 (conv): weights 100"), got
    assert got["a kind it does not know"].startswith("layer 1 (softplus): not a layer"), got
    assert got["too much padding"].startswith("layer 0 (conv): bad kernel 5 or padding 3"), got
    assert got["no output layer"] == "the stack must end in a dense layer of 10", got


def test_a_version_1_mlp_payload_kept_by_a_browser_still_reads(tmp_path, model):
    """IndexedDB may hold an MLP's payload from before version 2: its header is the same."""
    _, payload = inside.model_payload(model, np.zeros((2, 28, 28), np.uint8))
    old = payload[:4] + (1).to_bytes(4, "little") + payload[8:]
    images = {k: v for k, v in variants().items() if k in ("seven", "four")}
    for (name, rgba), res in zip(images.items(), run_js(tmp_path, model, images, payload=old)):
        p_py = model.predict_proba(preprocess_drawing(rgba)[None])[0]
        assert np.abs(np.array(res["probs"]) - p_py).max() <= 1e-4, name


def test_the_page_runs_with_an_injected_stack(tiny_mnist):
    """AppTest: a Net as the current model: the pad is mounted, the caption speaks of feature
    maps, and the slider's sentence says why a Net has no snapshots."""
    import secrets

    from streamlit.testing.v1 import AppTest

    from ui import identity, session

    net = Net("conv 4x5 - pool - dense 16", seed=0)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.session_state[session.INJECT_KEY] = session.Injected(tiny_mnist, net)
    at.session_state[identity.OWNER_KEY] = f"v-test{secrets.token_hex(12)}"
    at.switch_page("pages/7_Inside.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("feature maps" in c.value for c in at.caption)
    p = at.session_state[inside.PAYLOAD_KEY]
    assert p["id"] == inside.model_id(net) and p["snapshots"] == 0 and "model_bytes" not in p


def test_the_page_runs_with_an_injected_model(tiny_mnist, tiny_model):
    """AppTest: the page mounts the pad for a model without snapshots, and says why no slider."""
    import secrets

    from streamlit.testing.v1 import AppTest

    from ui import identity, session

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.session_state[session.INJECT_KEY] = session.Injected(tiny_mnist, tiny_model)
    at.session_state[identity.OWNER_KEY] = f"v-test{secrets.token_hex(12)}"
    at.switch_page("pages/7_Inside.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Inside the network"]
    p = at.session_state[inside.PAYLOAD_KEY]  # the page names the model; no bytes until the pad asks
    assert p["id"] == inside.model_id(tiny_model) and p["snapshots"] == 0 and "model_bytes" not in p
    assert p["id"] == inside.model_payload(tiny_model, tiny_mnist.test.images[:2])[0]


@pytest.mark.parametrize("bad", [None, 42, "data:image/jpeg;base64,AAAA", "data:image/png;base64,!!!",
                                 "data:image/png;base64,aGVsbG8=",  # valid base64, not a PNG
                                 "data:image/png;base64," + "A" * (inside.MAX_PNG_CHARS + 1)])
def test_keep_refuses_what_is_not_the_pads_png(bad):
    with pytest.raises(ValueError):
        inside.drawing_from_png(bad)


def test_keep_refuses_a_png_of_another_size():
    import base64
    import io

    buf = io.BytesIO()
    Image.new("RGBA", (100, 100)).save(buf, "PNG")
    with pytest.raises(ValueError, match="280x280"):
        inside.drawing_from_png("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())


def test_a_pad_png_round_trips_to_the_same_reading():
    import base64
    import io

    rgba = rasterise(*DRAWINGS["seven"])
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    back = inside.drawing_from_png("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    assert np.array_equal(back, rgba)


def test_keep_refuses_a_drawing_for_a_model_of_another_data_set(monkeypatch):
    """The pad offers no "Keep it" for a Fashion-MNIST model; the server refuses one anyway."""
    import base64
    import io
    from types import SimpleNamespace

    import streamlit as st

    from ui import mydigits

    def never(*args):
        raise AssertionError("a drawing was kept for a Fashion-MNIST model")

    monkeypatch.setattr(mydigits, "keep", never)
    buf = io.BytesIO()
    Image.fromarray(rasterise(*DRAWINGS["seven"]), "RGBA").save(buf, "PNG")
    png = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    entry = SimpleNamespace(dataset="fashion", dataset_title="Fashion-MNIST", model=None)
    inside._keep(entry, {"nonce": "n1", "label": 7, "shown": 7, "png": png})
    assert st.session_state[inside.MESSAGE_KEY] == (
        "error", "This model reads Fashion-MNIST: drawings are kept as digits for MNIST models only.")
    assert st.session_state[inside.KEPT_KEY] == {"nonce": "n1", "label": None, "ok": False}
