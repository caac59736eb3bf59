"""mnistnet.reading, the Draw page's hints, on drawings rendered by bench/strokes.py: a dot or a
tiny scribble is 'too small', a normal 7 is read, a shape between a 3 and an 8 is 'unsure'
and names both; and the Draw page shows those hints (AppTest)."""

import numpy as np
import pytest
from test_app import no_exception, open_page, texts
from threadpoolctl import threadpool_limits

from bench import strokes
from mnistnet import MLP, TrainConfig, load_mnist, preprocess_drawing, train
from mnistnet import reading as rd
from ui import canvas

THREE = strokes.STYLES[3]["two bumps"][0]
# Strokes that close a 3's open left side into an 8, drawn from its waist.
CLOSING = [[(0.28, 0.47), (0.08, 0.33), (0.04, 0.12)], [(0.28, 0.47), (0.07, 0.66), (0.03, 0.9)]]


@pytest.fixture(scope="module")
def model():
    """784-128-10, 2 epochs of the report's SGD on all of MNIST's training set (about 3 s)."""
    net = MLP((784, 128, 10), seed=0)
    with threadpool_limits(1):
        train(net, load_mnist(), TrainConfig(epochs=2))
    return net


def drawing(parts, pen: int) -> np.ndarray:
    """Strokes given in canvas px -> the canvas image (280, 280, 4) uint8."""
    return strokes.render(strokes.Drawing(0, "test", [np.asarray(p, float) for p in parts], pen, 0.0, 0.0, 0.0))


def dot(pen: int, at=(150.0, 120.0)) -> np.ndarray:
    """A tap of the pen: a stroke that moves half a pixel."""
    return drawing([[at, (at[0] + 0.5, at[1] + 0.3)]], pen)


def scribble(extent: float, pen: int, seed: int = 0) -> np.ndarray:
    """A quick zig-zag of the pen inside an `extent` px square."""
    pts = 140 + np.random.default_rng(seed).uniform(0, extent, (8, 2))
    return drawing([strokes.catmull_rom(pts)], pen)


def three_to_eight(t: float, pen: int = 20) -> np.ndarray:
    """A 3 whose left side is closed by a share t (0..1) of the strokes that make it an 8."""
    def partial(curve):
        s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(curve, axis=0).T))])
        end = [np.interp(t * s[-1], s, curve[:, k]) for k in range(2)]
        return np.vstack([curve[s <= t * s[-1]], end])

    parts = [strokes.catmull_rom(THREE)] + [partial(strokes.catmull_rom(c)) for c in CLOSING]
    return drawing([p * 180 + [80, 50] for p in parts], pen)


def ambiguous(model) -> tuple[np.ndarray, set[int]]:
    """By bisection on t, the 3-to-8 drawing where `model`'s reading changes, and the two readings."""
    lo, hi = 0.0, 1.0
    read = lambda t: int(rd.read_drawing(three_to_eight(t), model).probs.argmax())  # noqa: E731
    a, b = read(lo), read(hi)
    assert a != b, f"the model reads both ends as {a}: the bisection needs two readings"
    for _ in range(12):
        mid = (lo + hi) / 2
        if read(mid) == a:
            lo = mid
        else:
            hi = mid
    pick = min((lo, hi), key=lambda t: rd.read_drawing(three_to_eight(t), model).probs.max())
    return three_to_eight(pick), {a, b}


@pytest.mark.parametrize("pen", [8, 20, 40])
def test_a_dot_is_too_small_not_a_digit(model, pen):
    image = dot(pen)
    assert preprocess_drawing(image) is not None  # it has ink enough to be read ...
    r = rd.read_drawing(image, model)
    assert r.kind == rd.TOO_SMALL and r.probs is None  # ... but gets a hint instead
    assert r.message.startswith("Draw bigger: ") and r.message.count(".") == 1


@pytest.mark.parametrize("extent, pen", [(15, 8), (20, 8), (25, 20), (30, 20), (30, 40), (40, 40)])
def test_a_tiny_scribble_is_too_small(model, extent, pen):
    """The pen zig-zags within a square of 15-30 px (40 with the fattest pen): under 10% of the canvas."""
    for seed in range(3):
        assert rd.read_drawing(scribble(extent, pen, seed), model).kind == rd.TOO_SMALL


def test_a_normal_seven_is_read(model):
    d = strokes.make_drawing(7, "plain", strokes.EASY, np.random.default_rng(0))
    r = rd.read_drawing(strokes.render(d), model)
    assert r.kind == rd.SURE and r.top_two[0] == 7
    assert r.message == f"The network reads 7 with {100 * r.probs[7]:.1f}% confidence."
    assert r.digit.shape == (28, 28) and r.probs.shape == (10,) and r.probs.dtype == np.float32


@pytest.mark.parametrize("name", ["easy", "hard"])
def test_no_digit_of_the_benchmark_is_called_too_small(name):
    """Down to the hard set's 15%-of-the-canvas digits drawn with a 6-10 px pen."""
    images, _ = strokes.render_set(strokes.drawing_set(name, 10))
    inks = [rd.ink_extent(im) for im in images]
    assert not [i for i in inks if rd.too_small(i)]


def test_a_shape_between_3_and_8_is_unsure_and_names_both(model):
    image, readings = ambiguous(model)
    assert readings == {3, 8}
    r = rd.read_drawing(image, model)
    assert r.kind == rd.UNSURE and r.probs.max() < rd.UNSURE_BELOW
    best, second = r.top_two
    assert {best, second} == {3, 8} and r.message == f"{best} or {second}?"


def test_the_rule_at_its_edges():
    ink = rd.Ink(longer_side=100, pen=20.0, canvas_side=280)
    probs = np.full(10, 0.0, np.float32)
    probs[[2, 5]] = [rd.UNSURE_BELOW + 0.01, 1 - rd.UNSURE_BELOW - 0.01]
    assert rd.drawing_hint(ink, probs) == rd.SURE
    probs[[2, 5]] = [rd.UNSURE_BELOW - 0.01, 1 - rd.UNSURE_BELOW + 0.01]
    assert rd.drawing_hint(ink, probs) == rd.UNSURE
    small = int(rd.MIN_SIDE * 280)  # 33 px: under 12% of 280
    assert rd.drawing_hint(rd.Ink(small, 4.0, 280), probs) == rd.TOO_SMALL
    assert rd.drawing_hint(rd.Ink(small + 1, 4.0, 280), probs) != rd.TOO_SMALL
    assert rd.drawing_hint(rd.Ink(70, 40.0, 280), probs) == rd.TOO_SMALL  # 1.75 pen widths: a blob
    assert rd.drawing_hint(rd.Ink(75, 40.0, 280), probs) != rd.TOO_SMALL


def test_blank_is_blank(model):
    black = np.zeros((280, 280, 4), np.uint8)
    black[..., 3] = 255
    for image in (None, black):
        r = rd.read_drawing(image, model)
        assert r.kind == rd.BLANK and r.digit is None and r.probs is None


def test_the_pen_width_is_measured(model):
    for pen in (8, 20, 40):
        ink = rd.ink_extent(drawing([[(60.0, 140.0), (220.0, 140.0)]], pen))  # a straight line
        assert pen <= ink.pen <= pen + 3, (pen, ink.pen)
        assert 160 + pen - 1 <= ink.longer_side <= 160 + pen + 2


# -- the Draw page ------------------------------------------------------------------------

def test_the_draw_page_says_draw_bigger_for_a_dot(tiny_mnist, tiny_model):
    at = open_page("pages/3_Draw.py", tiny_mnist, tiny_model, session_state={canvas.IMAGE_KEY: dot(20)})
    no_exception(at)
    assert [w.value for w in at.warning] == [rd.read_drawing(dot(20), tiny_model).message]
    assert "predicted-digit" not in "\n".join(m.value for m in at.markdown)
    assert not [b for b in at.button if b.label in ("Keep it", "Correct it")]  # nothing to keep


def test_the_draw_page_shows_an_unsure_reading_with_both_probabilities(tiny_mnist, tiny_model):
    image, _ = ambiguous(tiny_model)
    r = rd.read_drawing(image, tiny_model)
    assert r.kind == rd.UNSURE
    best, second = r.top_two
    at = open_page("pages/3_Draw.py", tiny_mnist, tiny_model, session_state={canvas.IMAGE_KEY: image})
    no_exception(at)
    html = "\n".join(m.value for m in at.markdown)
    assert f">{best}</span>" in html and "id='predicted-digit'" in html
    assert f"or {second}?" in html
    assert f"{100 * r.probs[best]:.1f}% confidence" in html and f"{second} with {100 * r.probs[second]:.1f}%" in html
    assert "Draw bigger" not in texts(at)
    assert [b for b in at.button if b.label == "Keep it"]  # an unsure reading can still be kept
