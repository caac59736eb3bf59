"""bench/strokes.py, the stroke-drawn digit generator: deterministic, inside the canvas, its
stated ranges measured on the rendered ink, and its drawings go through preprocess_drawing."""

import numpy as np
import pytest

from bench import strokes
from mnistnet import preprocess_drawing
from mnistnet.drawing import INK_LEVEL

PER_DIGIT = 6  # 60 drawings a set: every style of every digit at least twice


@pytest.fixture(scope="module", params=["easy", "hard"])
def rendered(request):
    drawings = strokes.drawing_set(request.param, PER_DIGIT)
    images, labels = strokes.render_set(drawings)
    return request.param, drawings, images, labels


def ink_rows_cols(image):
    mask = image[..., 0] >= INK_LEVEL
    return np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))


def test_catmull_rom_passes_through_its_control_points():
    pts = [(0.0, 0.0), (1.0, 2.0), (3.0, 1.0), (4.0, 4.0)]
    curve = strokes.catmull_rom(pts, per_segment=10)
    assert curve.shape == (31, 2)
    np.testing.assert_allclose(curve[::10], pts, atol=1e-12)  # each segment starts on its point


def test_the_sets_are_deterministic_and_seeds_differ():
    a = strokes.render_set(strokes.drawing_set("hard", 2))[0]
    b = strokes.render_set(strokes.drawing_set("hard", 2))[0]
    assert np.array_equal(a, b)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    d1 = strokes.make_drawing(3, "round", strokes.EASY, r1)
    d2 = strokes.make_drawing(3, "round", strokes.EASY, r2)
    assert np.array_equal(strokes.render(d1), strokes.render(d2))
    d3 = strokes.make_drawing(3, "round", strokes.EASY, np.random.default_rng(6))
    assert not np.array_equal(strokes.render(d1), strokes.render(d3))


def test_a_drawing_is_rendered_like_the_canvas(rendered):
    _, _, images, labels = rendered
    assert images.shape == (10 * PER_DIGIT, 280, 280, 4) and images.dtype == np.uint8
    assert (images[..., 3] == 255).all()  # opaque
    assert (images[..., 0] == images[..., 1]).all() and (images[..., 0] == images[..., 2]).all()  # grey
    assert images[..., 0].max() == 255 and np.median(images[0, ..., 0]) == 0  # white on black
    grey = images[..., 0]
    assert ((grey > 0) & (grey < 255)).any(axis=(1, 2)).all()  # anti-aliased edges
    assert np.array_equal(np.bincount(labels), np.full(10, PER_DIGIT))


def test_the_ink_is_inside_the_canvas_at_the_requested_height(rendered):
    _, drawings, images, _ = rendered
    for d, image in zip(drawings, images):
        rows, cols = ink_rows_cols(image)
        assert rows[0] >= 1 and cols[0] >= 1 and rows[-1] <= 278 and cols[-1] <= 278  # nothing cut off
        height = rows[-1] - rows[0] + 1
        # The ink box spans the pen's centre line plus the pen; anti-aliasing adds at most 2 px.
        assert d.height - 1 <= height <= d.height + 2, (d.digit, d.style, height, d.height)


def test_the_stated_ranges_hold(rendered):
    name, drawings, images, _ = rendered
    ranges = strokes.SETS[name][0]
    for d, image in zip(drawings, images):
        rows, _ = ink_rows_cols(image)
        share = (rows[-1] - rows[0] + 1) / 280  # measured on the image, not taken from `d`
        assert any(lo - 1 / 280 <= share <= hi + 2 / 280 for lo, hi in ranges.heights), (name, share)
        assert any(lo <= d.pen <= hi for lo, hi in ranges.pens), d.pen
        assert d.pen <= strokes.MAX_PEN_PER_HEIGHT * d.height
        assert abs(d.rotation) <= ranges.rotation and abs(d.slant) <= ranges.slant
    if name == "hard":  # both ends of the size range and of the pen range occur
        shares = np.array([d.height / 280 for d in drawings])
        pens = np.array([d.pen for d in drawings])
        assert (shares <= 0.30).any() and (shares >= 0.85).any()
        assert (pens <= 10).any() and (pens >= 32).any()
        assert (pens[shares <= 0.30] <= 10).all()  # a tiny digit gets the thin pen


def test_every_style_is_drawn_and_a_digit_goes_through_preprocess_drawing(rendered):
    _, drawings, images, _ = rendered
    drawn = {(d.digit, d.style) for d in drawings}
    assert drawn == {(k, s) for k, styles in strokes.STYLES.items() for s in styles}
    for image in images[::7]:
        digit = preprocess_drawing(image)
        assert digit is not None and digit.shape == (28, 28) and digit.dtype == np.uint8
        assert (digit >= INK_LEVEL).sum() >= 20  # real ink, not a speck
        assert digit.max() >= 128  # bright ink (a thin pen's peak is softened by the sub-pixel shift)


def test_an_unknown_set_is_refused():
    with pytest.raises(ValueError, match="set must be one of"):
        strokes.drawing_set("medium")
