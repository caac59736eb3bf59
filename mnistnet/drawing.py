"""preprocess_drawing: a canvas image -> a 28x28 digit prepared the way MNIST was.

Imports numpy and Pillow. MNIST's recipe: crop to the ink, scale the longer side to 20 px
with anti-aliasing, place in a 28x28 field with the intensity centre of mass at the centre.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

BOX = 20  # MNIST digits fit a 20x20 box inside the 28x28 field
FIELD = 28
# Where MNIST itself puts the intensity centre of mass: (13.99, 14.01) averaged over the 10,000
# test digits (row, column; pixel coordinates 0..27), i.e. 28 / 2, not the field's middle 13.5.
CENTRE = FIELD / 2
INK_LEVEL = 32  # ink values below this are treated as background noise
MIN_INK_FRACTION = 0.0005  # fewer ink pixels than this share of the canvas counts as blank


def ink_intensity(image: np.ndarray) -> np.ndarray:
    """(H, W, 4) RGBA or (H, W) grey uint8 -> (H, W) float32 ink in 0..255 (0 = background).

    Handles white ink on black, dark ink on white, and ink of any colour on a transparent
    background (alpha carries the ink).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 4:
        lum = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        alpha = image[..., 3].astype(np.float32) / 255.0
        if alpha.min() < 1.0:
            stroke = alpha > 0.5
            bright_ink = stroke.any() and lum[stroke].mean() > 127
            return alpha * (lum if bright_ink else 255.0 - lum)
    elif image.ndim == 2:
        lum = image.astype(np.float32)
    else:
        raise ValueError(f"image must have shape (H, W) or (H, W, 4), got {image.shape}")
    # Opaque: the background is the majority tone.
    return lum if np.median(lum) < 128 else 255.0 - lum


def preprocess_drawing(image: np.ndarray) -> np.ndarray | None:
    """Canvas image (H, W, 4) RGBA or (H, W) grey uint8 -> (28, 28) uint8 MNIST-style, or None if blank.

    The result is white ink (up to 255) on black (0), its longer side 20 px, its intensity
    centre of mass at the field's centre; it goes straight into `MLP.predict_proba(x[None])`.
    """
    ink = ink_intensity(image)
    mask = ink >= INK_LEVEL
    if mask.sum() < max(3, MIN_INK_FRACTION * ink.size):
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(crop.astype(np.float32), mode="F").resize((nw, nh), Image.LANCZOS))
    small = np.clip(small, 0, None)
    peak = small.max()
    if peak <= 0:
        return None
    small = small * (255.0 / peak)  # thin pens give faint strokes once shrunk; MNIST ink peaks at 255
    # Integer placement that brings the centre of mass closest to the centre ...
    total = small.sum()
    cy = (small.sum(axis=1) @ np.arange(nh)) / total
    cx = (small.sum(axis=0) @ np.arange(nw)) / total
    top = int(np.clip(round(CENTRE - cy), 0, FIELD - nh))
    left = int(np.clip(round(CENTRE - cx), 0, FIELD - nw))
    field = np.zeros((FIELD, FIELD), np.float32)
    field[top:top + nh, left:left + nw] = small
    # ... then the sub-pixel rest by bilinear translation, which moves the mass exactly.
    dy, dx = CENTRE - (top + cy), CENTRE - (left + cx)
    if abs(dx) > 1e-3 or abs(dy) > 1e-3:
        img = Image.fromarray(field, mode="F")
        field = np.asarray(img.transform(img.size, Image.AFFINE, (1, 0, -dx, 0, 1, -dy), Image.BILINEAR))
    return np.clip(np.rint(field), 0, 255).astype(np.uint8)
