"""Data augmentation of training batches: random affine maps, stroke thickness, elastic
distortion (Simard, Steinkraus and Platt 2003) and left-right mirroring, all as array
operations over a whole batch.

Imports numpy only. A batch is gathered, thickened or thinned, then resampled once: the
affine map and the elastic displacement add up to one bilinear sampling pass.
"""

from __future__ import annotations

import numpy as np

SIDE = 28
PAD = 2  # zero border around each source image: clipped coordinates land in it
P = SIDE + 2 * PAD  # padded side, 32
CENTRE = (SIDE - 1) / 2  # 13.5: a quarter turn about it maps the pixel grid onto itself
# Images per pass: a chunk's buffers (about 1 MB) stay in the core's own cache. On this 2-core
# machine shared with other work, one pass over 128 images took 8 ms, four of 32 took 1.3 ms.
CHUNK = 32
# TrainConfig fields that turn on the Augmenter (shift_pixels alone keeps train._Shifter).
AUGMENT_FIELDS = ("rotate_degrees", "scale", "shear_degrees", "translate_pixels", "thickness",
                  "elastic_alpha", "flip")
# TrainConfig field -> (lowest, highest, unit): beyond these a digit is no longer legible
# (or, for sigma, the field is white noise or a plain shift).
LIMITS = {"rotate_degrees": (0, 45, " degrees"), "scale": (0, 0.5, ""), "shear_degrees": (0, 45, " degrees"),
          "translate_pixels": (0, 6, " px"), "thickness": (0, 1, ""), "elastic_alpha": (0, 64, " px"),
          "elastic_sigma": (1, 10, " px")}


def augmenting(config) -> bool:
    """Whether a TrainConfig asks for any augmentation beyond integer shifts."""
    return any(getattr(config, f) for f in AUGMENT_FIELDS)


def inverse_maps(rotate: np.ndarray, scale: np.ndarray, shear: np.ndarray,
                 tx: np.ndarray, ty: np.ndarray) -> np.ndarray:
    """Per image: rotation and shear (degrees), scale factor, translation (px) -> (n, 2, 3) float64.

    The forward map about the image centre c is dst = s R(rotate) H(shear) (src - c) + c + t,
    with (x, y) = (column, row), R turning +x towards +y and H(shear) = [[1, tan shear], [0, 1]]
    (a slant). Returned is its inverse [A | b], src = A dst + b: sampling needs, for each output
    pixel, where it comes from. All inputs are (n,) arrays (or scalars broadcast to them).
    """
    rotate, scale, shear, tx, ty = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64)
                                                          for v in (rotate, scale, shear, tx, ty)))
    th, k = np.deg2rad(rotate), np.tan(np.deg2rad(shear))
    cos, sin = np.cos(th), np.sin(th)
    # (s R H)^-1 = H^-1 R^-1 / s with H^-1 = [[1, -k], [0, 1]] and R^-1 = [[cos, sin], [-sin, cos]].
    a00, a01 = (cos + k * sin) / scale, (sin - k * cos) / scale
    a10, a11 = -sin / scale, cos / scale
    m = np.empty((*rotate.shape, 2, 3))
    m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1] = a00, a01, a10, a11
    # src = A (dst - c - t) + c  ->  offset b = c - A (c + t)
    m[..., 0, 2] = CENTRE - a00 * (CENTRE + tx) - a01 * (CENTRE + ty)
    m[..., 1, 2] = CENTRE - a10 * (CENTRE + tx) - a11 * (CENTRE + ty)
    return m


def gaussian_matrix(sigma: float) -> np.ndarray:
    """(28, 28) float32 G with G @ f smoothing a column f by a Gaussian of `sigma` px.

    Inside the image a row is the Gaussian normalised to sum 1 (as scipy's gaussian_filter).
    Near the border, where the kernel is cut off, a row is rescaled to the full kernel's
    sum of squares: G F G^T of i.i.d. noise F then has the same spread everywhere, and no row
    sums to more than 1 (for sigma in [1, 10]), so a field in [-1, 1] stays in [-1, 1].
    """
    d = np.arange(SIDE)[:, None] - np.arange(SIDE)[None, :]
    g = np.exp(-0.5 * (d / sigma) ** 2)
    full = np.exp(-0.5 * (np.arange(-8 * SIDE, 8 * SIDE + 1) / sigma) ** 2)
    g /= full.sum()
    g *= np.sqrt((full ** 2).sum() / full.sum() ** 2 / (g ** 2).sum(axis=1, keepdims=True))
    return g.astype(np.float32)


# The structuring element: a pixel and its 4 neighbours. A 3x3 square's erosion wipes out
# MNIST's thinnest strokes (2 px wide) altogether; the cross thins them to about 1 px.
CROSS = ((0, 1), (0, -1), (1, 0), (-1, 0))


def thicken(src: np.ndarray, t: np.ndarray, scratch: np.ndarray, filtered: np.ndarray) -> None:
    """Blend each image towards its grey dilation (t > 0, fatter) or erosion (t < 0, thinner)
    by |t|, in place.

    src: (n, 32, 32) float32 images with a 2 px border of the background value, which must be
    the lowest value (0 for raw pixels); t: (n,) float32 in [-1, 1]; scratch (n, 32, 32) and
    filtered (n, 28, 28) float32 are overwritten. Dilation takes the maximum of each pixel and
    its 4 neighbours (a cross), erosion the minimum.
    """
    sign = np.where(t < 0, np.float32(-1), np.float32(1))[:, None, None]  # (n, 1, 1)
    # Erosion is -dilate(-x): one max filter over +-x serves both, and the border (the lowest
    # value, so the highest once negated) erodes the image's edge as zero padding would.
    np.multiply(src, sign, out=scratch)
    inner = (slice(None), slice(PAD, PAD + SIDE), slice(PAD, PAD + SIDE))
    filtered[...] = scratch[inner]
    for dy, dx in CROSS:
        np.maximum(filtered, scratch[:, PAD + dy:PAD + dy + SIDE, PAD + dx:PAD + dx + SIDE], out=filtered)
    filtered *= sign
    img = src[inner]
    filtered -= img
    filtered *= np.abs(t).astype(np.float32)[:, None, None]
    img += filtered


class Warper:
    """Bilinear resampling of batches of up to `n` images, in buffers allocated once."""

    def __init__(self, n: int):
        self.n = n
        xy = np.indices((SIDE, SIDE), dtype=np.float32)[::-1].reshape(2, -1)  # x (column), y (row)
        self.grid = np.vstack([xy, np.ones((1, SIDE * SIDE), np.float32)])  # (3, 784)
        # Few buffers, each reused, so a batch's working set stays in cache. Flat, so that the
        # first 2 x m x 784 values are a contiguous (2, m, 784) array for a batch of m <= n.
        self.coords = np.empty(2 * n * SIDE * SIDE, np.float32)  # sampling x, y; then their fractions
        self.whole = np.empty(2 * n * SIDE * SIDE, np.float32)  # their integer parts; then 2 corners
        self.more = np.empty(2 * n * SIDE * SIDE, np.float32)  # the other 2 corners
        self.index = np.empty((n, SIDE * SIDE), np.intp)  # flat index of the top-left neighbour
        self.base = (np.arange(n, dtype=np.float32) * (P * P))[:, None]  # (n, 1) each image's start

    def warp(self, src: np.ndarray, maps: np.ndarray, out: np.ndarray,
             disp: np.ndarray | None = None) -> np.ndarray:
        """src (n, 32, 32) float32, images with a 2 px border of their background value; maps
        (n, 2, 3) inverse affine maps (`inverse_maps`); disp (2, n, 784) float32 added to the
        sampling x and y, or None -> out (n, 784) float32.

        Output pixel (row i, column j) takes the image's value at (x, y) = A [j, i] + b (+ disp),
        bilinearly, and the background outside the image.
        """
        n = len(src)
        assert n <= self.n and src.shape[1:] == (P, P) and src.flags.c_contiguous
        m = maps.transpose(1, 0, 2).astype(np.float32)  # (2, n, 3): x rows, then y rows
        m[..., 2] += PAD  # into the padded frame
        size = 2 * n * SIDE * SIDE
        coords, whole, more = (a[:size].reshape(2, n, -1) for a in (self.coords, self.whole, self.more))
        np.matmul(m.reshape(2 * n, 3), self.grid, out=coords.reshape(2 * n, -1))
        if disp is not None:
            coords += disp
        # Clipped into [0, 30]: beyond the image every neighbour is in the border.
        np.clip(coords, 0, P - 2, out=coords)
        np.floor(coords, out=whole)
        coords -= whole  # the fractions (np.modf does both, 10 times slower)
        wx, wy = whole
        wy *= P
        wy += wx
        wy += self.base[:n]
        idx = self.index[:n]
        np.copyto(idx, wy, casting="unsafe")  # exact integers: below 2^24 for n < 16,000
        flat = src.reshape(-1)
        (v00, v01), (v10, v11) = whole, more
        # mode="clip" skips the bounds checks' buffering (every index is in range): twice as fast
        np.take(flat, idx, out=v00, mode="clip")
        np.take(flat[1:], idx, out=v01, mode="clip")
        np.take(flat[P:], idx, out=v10, mode="clip")
        np.take(flat[P + 1:], idx, out=v11, mode="clip")
        fx, fy = coords
        v01 -= v00
        v01 *= fx
        v00 += v01  # along the top edge
        v11 -= v10
        v11 *= fx
        v10 += v11  # along the bottom edge
        v10 -= v00
        v10 *= fy
        return np.add(v00, v10, out=out)


def warp(images: np.ndarray, maps: np.ndarray, disp: np.ndarray | None = None) -> np.ndarray:
    """images (n, 28, 28), 0 the background; maps (n, 2, 3) from `inverse_maps`; disp
    (2, n, 28, 28) or None -> (n, 28, 28) float32 resampled (see Warper.warp)."""
    n = len(images)
    src = np.zeros((n, P, P), np.float32)
    src[:, PAD:PAD + SIDE, PAD:PAD + SIDE] = images
    d = None if disp is None else np.ascontiguousarray(disp, np.float32).reshape(2, n, -1)
    out = np.empty((n, SIDE * SIDE), np.float32)
    return Warper(n).warp(src, np.asarray(maps), out, d).reshape(n, SIDE, SIDE)


class Augmenter:
    """Random augmentation of training batches, scaled for the model, in reused buffers.

    images: (N, 28, 28) uint8. config: a TrainConfig (reads rotate_degrees, scale,
    shear_degrees, translate_pixels, shift_pixels, thickness, elastic_alpha, elastic_sigma, flip).
    pixel_table: (256,) float32 increasing, the model's scaled value of each uint8 level
    (`MLP.pixel_table()`). Every step works on scaled values: the scaling is linear and
    increasing, so maxima, minima and bilinear blends commute with it, and the border of each
    image is the scaled 0.
    """

    def __init__(self, images: np.ndarray, config, pixel_table: np.ndarray):
        if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE) or images.dtype != np.uint8:
            raise ValueError(f"images must be (N, 28, 28) uint8, got {images.shape} {images.dtype}")
        self.config = config
        self.table = np.asarray(pixel_table, dtype=np.float32)
        if self.table.shape != (256,) or not (np.diff(self.table) > 0).all():
            raise ValueError("pixel_table must be 256 increasing values")
        # A 2 px border of zeros around every image, once (N x 1 KB): a batch is one gather.
        self.padded = np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD)))  # (N, 32, 32) uint8
        self.geometric = bool(config.rotate_degrees or config.scale or config.shear_degrees
                              or config.translate_pixels or config.shift_pixels or config.elastic_alpha)
        a, g = config.elastic_alpha, gaussian_matrix(config.elastic_sigma)
        r = g.sum(axis=1, dtype=np.float64)  # (28,) row sums
        # See elastic(): G, 2 alpha G and the field's mean shift alpha r r^T, (28, 28) each.
        self.g, self.g2, self.shift = g, (2 * a * g).astype(np.float32), (a * np.outer(r, r)).astype(np.float32)
        # Buffers for one chunk of a batch, reused by every chunk of every batch.
        self.src = np.empty((CHUNK, P, P), np.float32)  # the chunk, scaled, with its border
        self.scratch = np.empty((CHUNK, P, P), np.float32)
        self.filtered = np.empty((CHUNK, SIDE, SIDE), np.float32)
        self.noise = np.empty((2 * CHUNK, SIDE, SIDE), np.float32)  # elastic fields
        self.smooth = np.empty((2 * CHUNK, SIDE, SIDE), np.float32)
        self.warper = Warper(CHUNK)

    def batch(self, idx: np.ndarray, rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
        """idx: (n,) int64 rows of `images` -> out[:n], (n, 784) float32 augmented and scaled.

        out: (>= n, 784) float32. Every random value comes from `rng`: the same generator
        state gives the same batch.
        """
        n, c = len(idx), self.config
        xb = out[:n]
        if not (self.geometric or c.thickness):
            np.take(self.table, self.padded[idx, PAD:PAD + SIDE, PAD:PAD + SIDE].reshape(n, -1), out=xb)
            return self._flip(xb, rng)
        t = rng.uniform(-c.thickness, c.thickness, n).astype(np.float32) if c.thickness else None
        maps = self._maps(n, rng) if self.geometric else None
        for lo in range(0, n, CHUNK):
            hi = min(lo + CHUNK, n)
            m = hi - lo
            src = self.src[:m]
            np.take(self.table, self.padded[idx[lo:hi]], out=src)
            if t is not None:
                thicken(src, t[lo:hi], self.scratch[:m], self.filtered[:m])
            if maps is None:
                xb[lo:hi].reshape(m, SIDE, SIDE)[...] = src[:, PAD:PAD + SIDE, PAD:PAD + SIDE]
            else:
                disp = self.elastic(m, rng).reshape(2, m, -1) if c.elastic_alpha else None
                self.warper.warp(src, maps[lo:hi], xb[lo:hi], disp)
        return self._flip(xb, rng)

    def _flip(self, xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Mirror a random half of xb's (n, 784) images left to right, in place, when the
        config asks (drawn last, so other draws are the same with or without it)."""
        if self.config.flip:
            images = xb.reshape(len(xb), SIDE, SIDE)
            chosen = np.flatnonzero(rng.random(len(xb)) < 0.5)
            images[chosen] = images[chosen, :, ::-1]
        return xb

    def _maps(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 2, 3) random inverse affine maps, one per image."""
        c = self.config
        draw = rng.uniform(-1.0, 1.0, (5, n))
        tx, ty = c.translate_pixels * draw[3], c.translate_pixels * draw[4]
        if c.shift_pixels:
            shift = rng.integers(-c.shift_pixels, c.shift_pixels + 1, (2, n))
            tx, ty = tx + shift[0], ty + shift[1]
        return inverse_maps(c.rotate_degrees * draw[0], 1.0 + c.scale * draw[1], c.shear_degrees * draw[2], tx, ty)

    def elastic(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(2, n, 28, 28) float32 elastic displacements in px along x and y (Simard et al. 2003):
        uniform(-1, 1) fields smoothed by a Gaussian of elastic_sigma px, times elastic_alpha.
        Each is at most alpha in size. Up to CHUNK images: a view of a buffer, overwritten by
        the next call."""
        big = n > CHUNK
        u = np.empty((2 * n, SIDE, SIDE), np.float32) if big else self.noise[:2 * n]
        t = np.empty((2 * n, SIDE, SIDE), np.float32) if big else self.smooth[:2 * n]
        rng.random(out=u, dtype=np.float32)  # U in [0, 1): alpha (2U - 1) is what Simard draws
        # G U G^T as two products over the whole batch, rows then (transposed) columns; the
        # second uses 2 alpha G. The result is (2 alpha G U G^T)^T: U's entries are i.i.d., so
        # it has exactly the same distribution. alpha G (2U - 1) G^T is that minus alpha G 1 1^T
        # G^T = alpha r r^T, r the row sums of G.
        np.matmul(u.reshape(-1, SIDE), self.g.T, out=t.reshape(-1, SIDE))
        u[...] = t.transpose(0, 2, 1)
        np.matmul(u.reshape(-1, SIDE), self.g2.T, out=t.reshape(-1, SIDE))
        t -= self.shift
        return t.reshape(2, n, SIDE, SIDE)
