"""Augmentation (mnistnet.augment) against independent references: shifted copies, np.rot90,
a scaled dot worked out by hand, max/min filters written pixel by pixel, the elastic field's
spread from its formula, and real MNIST digits read by a briefly trained network."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from mnistnet import MLP, TrainConfig, load_mnist, train
from mnistnet.augment import Augmenter, augmenting, gaussian_matrix, inverse_maps, thicken, warp

RAW = np.arange(256, dtype=np.float32)  # a pixel table that leaves pixels as they are (0..255)
MILD = dict(rotate_degrees=10.0, scale=0.1, shear_degrees=10.0, thickness=0.3, elastic_alpha=8.0,
            elastic_sigma=3.0)
ALL = dict(rotate_degrees=15.0, scale=0.15, shear_degrees=15.0, translate_pixels=2.0, shift_pixels=1,
           thickness=0.5, elastic_alpha=34.0, elastic_sigma=4.0)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def digits(mnist):
    """(64, 28, 28) uint8: real training digits."""
    return mnist.train.images[:64]


def augment(images, rng=0, table=RAW, out_rows=None, **fields):
    """All `images` through an Augmenter of TrainConfig(**fields) -> (n, 784) float32."""
    n = len(images)
    out = np.full((out_rows or n, 784), np.nan, np.float32)
    aug = Augmenter(images, TrainConfig(**fields), table)
    return aug.batch(np.arange(n), np.random.default_rng(rng), out)


def identity(n):
    return inverse_maps(np.zeros(n), 1.0, 0.0, 0.0, 0.0)


# -- nothing on, and the output's form ----------------------------------------------------

def test_all_off_gives_the_models_own_scaling_exactly(digits):
    model = MLP((784, 8, 10))
    assert not augmenting(TrainConfig())
    out = augment(digits, table=model.pixel_table())
    assert np.array_equal(out, model.scale_inputs(digits))


def test_identity_warp_and_zero_thickness_leave_images_exactly(digits):
    assert np.array_equal(warp(digits, identity(len(digits))), digits.astype(np.float32))
    src = np.zeros((len(digits), 32, 32), np.float32)
    src[:, 2:30, 2:30] = digits
    thicken(src, np.zeros(len(digits), np.float32), np.empty_like(src), np.empty((len(digits), 28, 28), np.float32))
    assert np.array_equal(src[:, 2:30, 2:30], digits)


@pytest.mark.parametrize("fields", [dict(rotate_degrees=5.0), dict(thickness=0.5), dict(elastic_alpha=8.0), ALL])
def test_output_is_float32_in_the_rows_asked_for(digits, fields):
    out = np.full((100, 784), np.nan, np.float32)
    aug = Augmenter(digits, TrainConfig(**fields), RAW)
    xb = aug.batch(np.arange(10, 50), np.random.default_rng(0), out)
    assert xb.dtype == np.float32 and xb.shape == (40, 784)
    assert np.shares_memory(xb, out) and np.isnan(out[40:]).all()  # only out[:n] is written
    assert np.isfinite(xb).all() and xb.min() >= 0 and xb.max() <= 255 + 1e-3
    small = aug.batch(np.arange(3), np.random.default_rng(0), out)  # a smaller last batch
    assert small.shape == (3, 784)


def test_a_smaller_batch_after_a_larger_one_is_its_own(digits):
    """The last batch of an epoch is smaller: nothing of the batch before may leak into it
    (the buffers are reused), and it is what the same draw gives a fresh Augmenter."""
    aug = Augmenter(digits, TrainConfig(**ALL), RAW)
    out = np.empty((64, 784), np.float32)
    aug.batch(np.arange(64), np.random.default_rng(1), out)
    for n in (40, 31, 7):  # across chunk boundaries and within one
        small = aug.batch(np.arange(n), np.random.default_rng(2), out).copy()
        assert np.array_equal(small, augment(digits[:n], rng=2, **ALL))


def test_same_seed_same_batch_other_seed_differs(digits):
    a, b, c = (augment(digits, rng=seed, **ALL) for seed in (5, 5, 6))
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match="images must be"):
        Augmenter(np.zeros((4, 28, 28), np.float32), TrainConfig(rotate_degrees=5.0), RAW)


# -- mirroring ---------------------------------------------------------------------------

@pytest.mark.parametrize("fields", [{}, dict(rotate_degrees=10.0, thickness=0.5, elastic_alpha=8.0)])
def test_flip_mirrors_about_half_and_changes_nothing_else(digits, fields):
    """With flip, each image is the one without it, or its mirror: the same draws come first
    (flip's own draw is the last), so the two can be compared image by image."""
    plain = augment(digits, rng=3, **fields).reshape(-1, 28, 28)
    flipped = augment(digits, rng=3, flip=True, **fields).reshape(-1, 28, 28)
    same = (flipped == plain).all(axis=(1, 2))
    mirrored = (flipped == plain[:, :, ::-1]).all(axis=(1, 2))
    assert (same | mirrored).all()
    assert 16 <= mirrored.sum() <= 48  # 64 coin tosses; a symmetric digit may count as both
    assert augmenting(TrainConfig(flip=True))


def test_flip_must_be_true_or_false():
    with pytest.raises(ValueError, match="flip must be true or false, got 'yes'"):
        TrainConfig(flip="yes")


# -- the affine map -----------------------------------------------------------------------

@pytest.mark.parametrize("tx, ty", [(3, -2), (-1, 4), (0, 1)])
def test_integer_translation_is_a_shifted_copy_with_zero_fill(digits, tx, ty):
    n = len(digits)
    moved = warp(digits, inverse_maps(np.zeros(n), 1.0, 0.0, float(tx), float(ty)))
    expected = np.zeros((n, 28 + 8, 28 + 8), np.float32)
    expected[:, 4 + ty:32 + ty, 4 + tx:32 + tx] = digits  # +x is right, +y is down
    assert np.array_equal(moved, expected[:, 4:32, 4:32])


def test_a_quarter_turn_is_rot90(digits):
    n = len(digits)
    turned = warp(digits, inverse_maps(np.full(n, 90.0), 1.0, 0.0, 0.0, 0.0))
    # +90 degrees turns +x (right) towards +y (down): clockwise on screen, np.rot90's k=-1.
    expected = np.rot90(digits, k=-1, axes=(1, 2)).astype(np.float32)
    np.testing.assert_allclose(turned, expected, atol=1e-3)
    assert not np.allclose(turned, np.rot90(digits, k=1, axes=(1, 2)), atol=1)


def test_scale_2_of_a_centred_dot_worked_out_by_hand():
    dot = np.zeros((1, 28, 28), np.uint8)
    dot[0, 13:15, 13:15] = 255  # 2x2 px around the centre, (13.5, 13.5)
    big = warp(dot, inverse_maps(np.zeros(1), 2.0, 0.0, 0.0, 0.0))[0]
    # Output column j reads the source at 13.5 + (j - 13.5) / 2; bilinear between columns 13
    # and 14 (255) and their zero neighbours gives, for j = 11..16:
    profile = np.array([0.25, 0.75, 1, 1, 0.75, 0.25], np.float32)
    expected = np.zeros((28, 28), np.float32)
    expected[11:17, 11:17] = 255 * np.outer(profile, profile)
    np.testing.assert_allclose(big, expected, atol=1e-3)
    assert big.sum() == pytest.approx(4 * dot.sum(), rel=1e-5)  # twice as wide, twice as tall


def test_a_slant_moves_rows_by_their_height_times_tan():
    bar = np.zeros((1, 28, 28), np.uint8)
    bar[0, 4:24, 13] = 200  # a vertical stroke through the centre column... and a half
    shear = np.degrees(np.arctan(1 / 9.5))  # row 4 is 9.5 px above the centre: 1 px of slant
    slanted = warp(bar, inverse_maps(np.zeros(1), 1.0, shear, 0.0, 0.0))[0]
    # x' = x + tan(shear) (y - 13.5): the top row moves 1 px left, the bottom row 1 px right.
    assert slanted[4, 12] == pytest.approx(200, abs=1e-3) and slanted[4, 13] == pytest.approx(0, abs=1e-3)
    assert slanted[23, 14] == pytest.approx(200, abs=1e-3)


def test_random_affine_stays_within_its_limits():
    """A dot at the centre, rotated and slanted about it, only moves by the translation: the
    ink's centre stays within translate_pixels (plus shifts) of the centre on each axis."""
    dot = np.zeros((200, 28, 28), np.uint8)
    dot[:, 13:15, 13:15] = 255
    out = augment(dot, rotate_degrees=45.0, scale=0.3, shear_degrees=30.0, translate_pixels=2.5,
                  shift_pixels=1).reshape(-1, 28, 28)
    ys, xs = np.indices((28, 28))
    ink = out.sum(axis=(1, 2))
    cy, cx = (out * ys).sum(axis=(1, 2)) / ink, (out * xs).sum(axis=(1, 2)) / ink
    assert np.abs(cy - 13.5).max() <= 3.5 + 1e-3 and np.abs(cx - 13.5).max() <= 3.5 + 1e-3
    assert np.abs(cx - 13.5).max() > 2.5  # the shifts do add to the translation


def test_shifts_alone_in_the_augmenter_are_integer_shifts(digits):
    """shift_pixels (the older option) also works through the Augmenter: every image is one of
    the 25 shifted copies of its original."""
    out = augment(digits[:16], shift_pixels=2, rotate_degrees=1e-9).reshape(-1, 28, 28)
    padded = np.pad(digits[:16], ((0, 0), (2, 2), (2, 2))).astype(np.float32)
    for img, pad in zip(out, padded):
        copies = [pad[2 - dy:30 - dy, 2 - dx:30 - dx] for dy in range(-2, 3) for dx in range(-2, 3)]
        assert min(np.abs(img - c).max() for c in copies) < 1e-3


# -- stroke thickness ---------------------------------------------------------------------

def cross_filter(img, pick):
    """Each pixel and its 4 neighbours (zero outside) -> pick of them, pixel by pixel."""
    h, w = img.shape
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            vals = [img[i, j]]
            for di, dj in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                ii, jj = i + di, j + dj
                vals.append(img[ii, jj] if 0 <= ii < h and 0 <= jj < w else 0.0)
            out[i, j] = pick(vals)
    return out


@pytest.mark.parametrize("t", [1.0, -1.0, 0.5, -0.25])
def test_thickness_matches_max_and_min_filters_by_hand(digits, t):
    img = digits[0].astype(np.float32)
    src = np.zeros((1, 32, 32), np.float32)
    src[0, 2:30, 2:30] = img
    thicken(src, np.array([t], np.float32), np.empty_like(src), np.empty((1, 28, 28), np.float32))
    target = cross_filter(img, max if t > 0 else min)
    np.testing.assert_allclose(src[0, 2:30, 2:30], img + abs(t) * (target - img), atol=1e-3)
    assert (src.sum() > img.sum()) == (t > 0)  # fatter strokes hold more ink, thinner less


def test_random_thickness_lies_between_erosion_and_dilation(digits):
    out = augment(digits, thickness=1.0).reshape(-1, 28, 28)
    thinner = np.stack([cross_filter(d.astype(np.float32), min) for d in digits[:8]])
    fatter = np.stack([cross_filter(d.astype(np.float32), max) for d in digits[:8]])
    assert (out[:8] >= thinner - 1e-3).all() and (out[:8] <= fatter + 1e-3).all()
    change = out.sum(axis=(1, 2)) / digits.sum(axis=(1, 2))
    assert change.min() < 0.9 and change.max() > 1.1  # both ways, by random amounts


# -- elastic distortion -------------------------------------------------------------------

def test_elastic_with_alpha_0_is_the_identity(digits):
    aug = Augmenter(digits, TrainConfig(elastic_alpha=0.0, rotate_degrees=1e-9), RAW)
    disp = aug.elastic(len(digits), np.random.default_rng(0))
    assert disp.shape == (2, len(digits), 28, 28) and not disp.any()
    assert np.array_equal(warp(digits, identity(len(digits)), disp), digits.astype(np.float32))


@pytest.mark.parametrize("alpha, sigma", [(34.0, 4.0), (8.0, 3.0), (36.0, 6.0)])
def test_elastic_field_has_the_spread_of_its_formula(digits, alpha, sigma):
    """alpha times uniform(-1, 1) noise smoothed by a unit-sum Gaussian: away from the border,
    each displacement's standard deviation is alpha / sqrt(3) * sum(k^2) with
    sum(k^2) = 1 / (2 sigma sqrt(pi)) for the 1-D kernel k (the field is separable)."""
    aug = Augmenter(digits, TrainConfig(elastic_alpha=alpha, elastic_sigma=sigma), RAW)
    disp = aug.elastic(2000, np.random.default_rng(0)).astype(np.float64)
    expected = alpha / np.sqrt(3) / (2 * sigma * np.sqrt(np.pi))
    assert disp.mean() == pytest.approx(0, abs=0.02 * expected)
    assert disp.std() == pytest.approx(expected, rel=0.03)
    assert np.abs(disp).max() <= alpha  # rows of the smoothing sum to at most 1
    # neighbours move together: a smooth field, not pixel noise
    assert np.corrcoef(disp[0, :, :, 10].ravel(), disp[0, :, :, 11].ravel())[0, 1] > 0.9
    g = gaussian_matrix(sigma).astype(np.float64)
    assert np.allclose((g ** 2).sum(axis=1), 1 / (2 * sigma * np.sqrt(np.pi)), rtol=1e-3)


def test_elastic_keeps_ink_and_moves_pixels_a_bounded_way(mnist):
    """Mild elastic distortion (alpha 2 px, sigma 4): no displacement exceeds alpha, so a dot's
    ink stays within alpha + 1 px of it. Over 500 digits the total ink stays the same on
    average (within 2%), and for 95% of them within 40% (alpha 34, sigma 4; 28-32% measured
    over 3 seeds) or 15% (alpha 8, sigma 3; 10% measured, every one within 25%): the field
    stretches and squeezes, it does not add or remove strokes."""
    digits = mnist.train.images[:500]
    dot = np.zeros((100, 28, 28), np.uint8)
    dot[:, 10, 17] = 255
    out = augment(dot, elastic_alpha=2.0).reshape(-1, 28, 28)
    ys, xs = np.nonzero(out.max(axis=0) > 1e-3)
    assert np.abs(ys - 10).max() < 3 and np.abs(xs - 17).max() < 3
    assert len(ys) > 1  # it does move
    before = digits.reshape(len(digits), -1).sum(axis=1)
    ink = augment(digits, elastic_alpha=34.0).sum(axis=1) / before
    assert abs(ink.mean() - 1) < 0.02 and np.percentile(np.abs(ink - 1), 95) < 0.4
    mild = augment(digits, elastic_alpha=8.0, elastic_sigma=3.0).sum(axis=1) / before
    assert abs(mild.mean() - 1) < 0.02 and np.percentile(np.abs(mild - 1), 95) < 0.15
    assert np.abs(mild - 1).max() < 0.3


# -- real digits stay legible -------------------------------------------------------------

def test_a_network_reads_mildly_augmented_digits_nearly_as_well(mnist):
    """784-128-10 trained for 1 epoch on 10,000 clean images reads the first 5,000 test digits,
    then the same digits under MILD augmentation (rotation up to 10 degrees, scale 1 +- 0.1,
    slant up to 10 degrees, thickness 0.3, elastic alpha 8 sigma 3): at most 8 points lower.
    Heavy elastic noise (alpha 64, sigma 1) is not legible: far lower, so the bound can fail."""
    model = MLP((784, 128, 10), seed=0)
    with threadpool_limits(1):
        train(model, mnist, TrainConfig(epochs=1, train_size=10_000, learning_rate=0.1))
    X, y = mnist.test.images[:5000], mnist.test.labels[:5000]
    clean = (model.predict(X) == y).mean()

    def accuracy(**fields):
        return (model.logits(augment(X, table=model.pixel_table(), **fields)).argmax(axis=1) == y).mean()

    assert clean > 0.85
    assert accuracy(**MILD) >= clean - 0.08, (clean, accuracy(**MILD))
    assert accuracy(elastic_alpha=64.0, elastic_sigma=1.0) < clean - 0.2


def test_training_with_augmentation_learns(mnist):
    """train() with the MILD augmentation goes through the Augmenter and still learns: 1 epoch
    on 10,000 images of 784-128-10 reads at least 88% of the test set (91.3% when measured;
    91.1% without augmentation), and the same seed gives the same run."""
    cfg = TrainConfig(epochs=1, train_size=10_000, learning_rate=0.1, **MILD)
    with threadpool_limits(1):  # small products: BLAS threads only contend on a busy machine
        hist = train(MLP((784, 128, 10), seed=0), mnist, cfg)
        again = train(MLP((784, 128, 10), seed=0), mnist, cfg)
    assert hist.config["elastic_alpha"] == 8.0 and hist.epochs[-1]["test"]["accuracy"] >= 0.88
    assert again.epochs[-1]["test"] == hist.epochs[-1]["test"]


# -- the configuration --------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("rotate_degrees", 46.0, "rotate_degrees must be a number from 0 to 45 degrees, got 46.0"),
    ("rotate_degrees", -1.0, "rotate_degrees must be a number from 0 to 45 degrees, got -1.0"),
    ("scale", 0.6, "scale must be a number from 0 to 0.5, got 0.6"),
    ("shear_degrees", float("nan"), "shear_degrees must be a number from 0 to 45 degrees, got nan"),
    ("translate_pixels", 7, "translate_pixels must be a number from 0 to 6 px, got 7"),
    ("thickness", True, "thickness must be a number from 0 to 1, got True"),
    ("elastic_alpha", "34", "elastic_alpha must be a number from 0 to 64 px, got '34'"),
    ("elastic_sigma", 0.5, "elastic_sigma must be a number from 1 to 10 px, got 0.5"),
])
def test_bad_augmentation_values_are_refused_by_name(field, value, message):
    with pytest.raises(ValueError) as e:
        TrainConfig(**{field: value})
    assert str(e.value) == message


def test_a_config_stored_before_augmentation_still_loads():
    old = {"batch_size": 128, "learning_rate": 0.05, "epochs": 20, "bias_learning_rate": None, "seed": 0,
           "momentum": 0.9, "lr_schedule": "cosine", "weight_decay": 0.0, "shift_pixels": 2,
           "train_size": None, "progress_every": 20}
    cfg = TrainConfig.from_dict(old)
    assert cfg.shift_pixels == 2 and cfg.rotate_degrees == 0 and cfg.elastic_alpha == 0 and cfg.flip is False
    assert not augmenting(cfg)
    assert TrainConfig.from_dict(TrainConfig(**ALL).to_dict()) == TrainConfig(**ALL)
