"""The Inside page's JavaScript (ui/inside_math.js, run by Node 20) against its Python twins on
the same pixels: the preprocessing against `preprocess_drawing`, the forward pass against
`MLP.predict_proba`, for networks trained here on real MNIST (two and three hidden layers).

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
import { decodePayload, makePreprocessor, makeNetwork } from "./inside_math.mjs";
const [payloadPath, imagesPath, regionsPath, outPath] = process.argv.slice(2);
const p = decodePayload(new Uint8Array(readFileSync(payloadPath)));
const h = p.header;
const net = makeNetwork(h.sizes, h.mean, h.std, p.weights, p.biases);
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
"""


def run_js(tmp_path: Path, model: MLP, images: dict[str, np.ndarray]) -> list[dict]:
    assert NODE, "node is missing: install Node 20 (apt-get install -y nodejs); this test never skips"
    (tmp_path / "inside_math.mjs").write_text((ROOT / "ui" / "inside_math.js").read_text())
    (tmp_path / "run.mjs").write_text(RUNNER)
    _, payload = inside.model_payload(model, np.zeros((2, 28, 28), np.uint8))
    (tmp_path / "model.bin").write_bytes(payload)
    (tmp_path / "images.bin").write_bytes(b"".join(a.tobytes() for a in images.values()))
    (tmp_path / "regions.json").write_text(json.dumps([ink_region(a) for a in images.values()]))
    subprocess.run([NODE, "run.mjs", "model.bin", "images.bin", "regions.json", "out.json"], cwd=tmp_path,
                   check=True, timeout=120)
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
    images = variants()
    results = run_js(tmp_path, model, images)
    read = 0
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
        read += 1
    assert read == len(images) - 1  # every drawing but the blank one was read on both sides


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
