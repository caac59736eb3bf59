"""preprocess_drawing against MNIST's own recipe, on synthetic canvases and on MNIST itself."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnistnet import load_mnist, preprocess_drawing


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def mnist_centre(mnist):
    """(row, column) of the intensity centre of mass of MNIST's test digits, averaged over the
    10,000 images, measured here from the data (pixel coordinates 0..27)."""
    ink = mnist.test.images.astype(np.float64)  # (10000, 28, 28)
    mass = ink.sum(axis=(1, 2))
    rows = (ink.sum(axis=2) @ np.arange(28)) / mass  # (10000,)
    cols = (ink.sum(axis=1) @ np.arange(28)) / mass
    return rows.mean(), cols.mean()


def canvas_with_digit(x0=10, y0=10, size=60, width=8) -> np.ndarray:
    """A 280x280 grey canvas with a small '7' drawn in the top-left corner, white on black."""
    img = Image.new("L", (280, 280), 0)
    d = ImageDraw.Draw(img)
    d.line([(x0, y0), (x0 + size * 0.6, y0)], fill=255, width=width)
    d.line([(x0 + size * 0.6, y0), (x0 + size * 0.2, y0 + size)], fill=255, width=width)
    return np.asarray(img)


def centre_of_mass(a: np.ndarray):
    a = a.astype(np.float64)
    ys, xs = np.indices(a.shape)
    return (ys * a).sum() / a.sum(), (xs * a).sum() / a.sum()


@pytest.mark.parametrize("x0, y0, size, width", [(10, 10, 60, 8), (150, 120, 150, 20), (90, 30, 230, 30)])
def test_a_digit_anywhere_comes_back_centred_like_mnist_20px(mnist_centre, x0, y0, size, width):
    out = preprocess_drawing(canvas_with_digit(x0, y0, size, width))
    assert out.shape == (28, 28) and out.dtype == np.uint8 and out.max() >= 230
    cy, cx = centre_of_mass(out)
    my, mx = mnist_centre
    # within 0.3 px of where MNIST puts its digits (the field's middle, 13.5, is 0.7 px off)
    assert np.hypot(cy - my, cx - mx) < 0.3, ((cy, cx), mnist_centre)
    rows = np.flatnonzero((out > 32).any(axis=1))
    cols = np.flatnonzero((out > 32).any(axis=0))
    longer = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    assert 19 <= longer <= 21, longer  # 20 px, +-1 for the anti-aliased edge


def test_blank_and_near_blank_give_none():
    assert preprocess_drawing(np.zeros((280, 280), np.uint8)) is None
    assert preprocess_drawing(np.zeros((280, 280, 4), np.uint8)) is None
    speck = np.zeros((280, 280), np.uint8)
    speck[100, 100] = 255
    assert preprocess_drawing(speck) is None


def test_grey_rgba_and_dark_on_transparent_agree():
    grey = canvas_with_digit()
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])  # white ink on opaque black
    ink_rgba = np.dstack([np.zeros_like(grey)] * 3 + [grey])  # black ink on transparent
    white_on_transparent = np.dstack([np.full_like(grey, 255)] * 3 + [grey])
    dark_on_white = 255 - grey
    ref = preprocess_drawing(grey)
    for other in (rgba, ink_rgba, white_on_transparent, dark_on_white):
        out = preprocess_drawing(other)
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_recognises_an_upscaled_mnist_digit(mnist):
    from mnistnet import MLP, TrainConfig, train
    d = mnist
    model = MLP((784, 64, 10), seed=0)
    train(model, d, TrainConfig(epochs=1, train_size=10_000))
    right = 0
    for i in range(50):  # a test digit drawn large and off-centre on a 280x280 canvas
        big = np.asarray(Image.fromarray(d.test.images[i]).resize((168, 168), Image.BILINEAR))
        canvas = np.zeros((280, 280), np.uint8)
        canvas[100:268, 5:173] = big
        right += int(model.predict(preprocess_drawing(canvas)[None])[0] == d.test.labels[i])
    assert right >= 45, right


@pytest.mark.parametrize("bad", [np.zeros((28, 28, 3), np.uint8), np.zeros((28, 28), np.float32),
                                 np.zeros(10, np.uint8)])
def test_bad_images(bad):
    with pytest.raises(ValueError):
        preprocess_drawing(bad)
