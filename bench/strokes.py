"""Stroke-drawn digits rendered like the Draw page's canvas: the generator of bench/drawn.py.

Imports numpy and Pillow. Each digit 0-9 has several writing styles people use, as pen
trajectories: control points in a box whose height is 1 (y grows downwards, x from 0 to about
0.7), one or more strokes, joined by a Catmull-Rom spline (a repeated point makes a corner).
The shapes follow how people write, not what any model reads well.

The styles, the ranges below and the two sets (seeds 1 and 2) were fixed BEFORE any model was
measured on them and are never tuned after seeing results; only the styles' looks were checked,
on contact sheets without any model's answer.

A drawing, each value uniform in its range from a seeded `np.random.Generator`:

    ink height       the ink box's height (pen included) as a share of the 280 px canvas
    pen              the pen's width in px (the Draw page's slider: 8..40, default 20)
    rotation         degrees, counter-clockwise
    slant            shear in degrees (positive leans the top to the right)
    aspect           width multiplier of the style's own width
    wobble           a smooth hand: a low-frequency wobble along the path (2-4 sines per axis,
                     0.4-1.8 cycles per unit of path length), amplitude as a share of the height
    jitter           the small tremor: noise every point, smoothed over 3 points, same unit

               easy             hard
    ink height 0.45-0.80        0.15-0.30 or 0.85-0.98 (half each)
    pen        14-28            6-10 or 32-40 (half each), and never over a quarter of the ink
                                height: a tiny digit gets the thin pen (a 40 px pen on a 42 px
                                digit fills every loop: a blob no person could read either)
    rotation   -6..+6           -15..+15
    slant      -10..+10         -20..+20
    aspect     0.85-1.15        0.75-1.30
    wobble     0.005-0.015      0.015-0.030
    jitter     0.003            0.006

The digit lies fully inside the canvas at a uniform random place. One too wide for the canvas
at its height (a huge, slanted, wide digit) is squeezed horizontally to fit, as a hand would.
`render` draws like streamlit-drawable-canvas (Fabric.js free drawing): white round-capped,
round-joined strokes on black, anti-aliased (4x supersampling, then a box filter), returned as
(280, 280, 4) uint8 RGBA with alpha 255: what ui/canvas.py hands to `preprocess_drawing`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIDE = 280  # the Draw page's canvas, px
SUPER = 4  # supersampling factor of the renderer


def _ellipse(cx, cy, rx, ry, start_deg, sweep_deg, n=12):
    """Points on an ellipse from start_deg through sweep_deg (0 deg = right, 90 = up, y downward)."""
    a = np.radians(start_deg + sweep_deg * np.linspace(0, 1, n))
    return [(cx + rx * np.cos(t), cy - ry * np.sin(t)) for t in a]


# digit -> {style name: [stroke, ...]}, each stroke a list of (x, y) control points.
STYLES: dict[int, dict[str, list[list[tuple[float, float]]]]] = {
    0: {
        "oval ccw": [_ellipse(0.32, 0.5, 0.32, 0.5, 80, 370, 14)],
        "oval cw": [_ellipse(0.3, 0.5, 0.3, 0.5, 100, -375, 14)],
        "round, open top": [_ellipse(0.36, 0.5, 0.36, 0.5, 70, 350, 14)],
    },
    1: {
        "plain": [[(0.1, 0.0), (0.1, 1.0)]],
        "flag": [[(0.0, 0.22), (0.28, 0.0), (0.28, 0.0), (0.28, 1.0)]],
        "flag and base": [[(0.08, 0.22), (0.35, 0.0), (0.35, 0.0), (0.35, 1.0)], [(0.08, 1.0), (0.62, 1.0)]],
    },
    2: {
        "plain": [[(0.02, 0.22), (0.2, 0.02), (0.45, 0.0), (0.62, 0.18), (0.56, 0.42), (0.3, 0.7),
                   (0.02, 1.0), (0.02, 1.0), (0.7, 0.98)]],
        "loop": [[(0.04, 0.25), (0.22, 0.02), (0.48, 0.01), (0.62, 0.2), (0.55, 0.45), (0.32, 0.7),
                  (0.12, 0.9), (0.02, 0.99), (0.16, 1.0), (0.22, 0.9), (0.1, 0.88), (0.2, 1.0),
                  (0.45, 0.98), (0.7, 0.95)]],
        "curvy base": [[(0.05, 0.3), (0.12, 0.08), (0.35, 0.0), (0.58, 0.1), (0.58, 0.36), (0.35, 0.66),
                        (0.05, 0.98), (0.05, 0.98), (0.3, 0.92), (0.5, 0.97), (0.72, 0.94)]],
    },
    3: {
        "two bumps": [[(0.04, 0.12), (0.28, 0.0), (0.55, 0.08), (0.56, 0.3), (0.28, 0.47), (0.28, 0.47),
                       (0.58, 0.6), (0.62, 0.84), (0.38, 1.0), (0.03, 0.9)]],
        "flat top": [[(0.04, 0.0), (0.62, 0.0), (0.62, 0.0), (0.28, 0.4), (0.28, 0.4), (0.55, 0.5),
                      (0.64, 0.76), (0.42, 0.98), (0.12, 0.98), (0.0, 0.86)]],
        "round": [[(0.05, 0.2), (0.2, 0.03), (0.45, 0.0), (0.6, 0.15), (0.52, 0.38), (0.3, 0.48),
                   (0.52, 0.55), (0.66, 0.75), (0.52, 0.95), (0.25, 1.0), (0.02, 0.85)]],
    },
    4: {
        "open": [[(0.38, 0.0), (0.0, 0.64), (0.0, 0.64), (0.72, 0.64)], [(0.56, 0.22), (0.56, 1.0)]],
        "closed": [[(0.5, 0.0), (0.02, 0.64), (0.02, 0.64), (0.72, 0.64)], [(0.52, 0.0), (0.52, 1.0)]],
        "square": [[(0.08, 0.0), (0.04, 0.6), (0.04, 0.6), (0.7, 0.6)], [(0.56, 0.05), (0.56, 1.0)]],
    },
    5: {
        "body then flag": [[(0.12, 0.0), (0.08, 0.44), (0.08, 0.44), (0.35, 0.37), (0.58, 0.48), (0.62, 0.74),
                            (0.45, 0.96), (0.2, 1.0), (0.0, 0.9)], [(0.12, 0.0), (0.64, 0.0)]],
        "one stroke": [[(0.64, 0.0), (0.12, 0.0), (0.12, 0.0), (0.08, 0.44), (0.08, 0.44), (0.35, 0.37),
                        (0.58, 0.48), (0.62, 0.74), (0.45, 0.96), (0.2, 1.0), (0.0, 0.9)]],
        "round belly": [[(0.14, 0.02), (0.1, 0.42), (0.1, 0.42), (0.3, 0.34), (0.55, 0.4), (0.68, 0.62),
                         (0.6, 0.88), (0.35, 1.0), (0.08, 0.95), (0.0, 0.82)], [(0.16, 0.02), (0.7, 0.0)]],
    },
    6: {
        "curved stem": [[(0.55, 0.02), (0.3, 0.12), (0.1, 0.4), (0.05, 0.72), (0.2, 0.97), (0.45, 0.98),
                         (0.6, 0.78), (0.52, 0.56), (0.3, 0.52), (0.1, 0.66)]],
        "straight stem": [[(0.38, 0.0), (0.2, 0.3), (0.08, 0.6), (0.1, 0.88), (0.3, 1.0), (0.52, 0.9),
                           (0.56, 0.68), (0.38, 0.56), (0.15, 0.62), (0.08, 0.72)]],
        "small loop": [[(0.5, 0.0), (0.28, 0.18), (0.12, 0.5), (0.12, 0.82), (0.3, 1.0), (0.5, 0.9),
                        (0.5, 0.7), (0.3, 0.64), (0.14, 0.76)]],
    },
    7: {
        "plain": [[(0.0, 0.02), (0.66, 0.0), (0.66, 0.0), (0.42, 0.5), (0.26, 1.0)]],
        "crossed": [[(0.0, 0.02), (0.66, 0.0), (0.66, 0.0), (0.42, 0.5), (0.26, 1.0)],
                    [(0.2, 0.5), (0.62, 0.5)]],
        "hooked top": [[(0.0, 0.14), (0.04, 0.02), (0.04, 0.02), (0.66, 0.02), (0.66, 0.02), (0.5, 0.35),
                        (0.38, 0.7), (0.32, 1.0)]],
    },
    8: {
        "one stroke": [[(0.58, 0.1), (0.32, 0.0), (0.08, 0.12), (0.14, 0.34), (0.46, 0.58), (0.6, 0.82),
                        (0.36, 1.0), (0.06, 0.86), (0.16, 0.6), (0.46, 0.38), (0.56, 0.18), (0.5, 0.04)]],
        "two circles": [_ellipse(0.33, 0.23, 0.23, 0.23, 90, 370, 12),
                        _ellipse(0.33, 0.72, 0.3, 0.28, 90, 370, 12)],
        "stacked loops": [_ellipse(0.35, 0.25, 0.22, 0.25, 270, 360, 12)
                          + _ellipse(0.35, 0.75, 0.3, 0.25, 90, -360, 12)[1:]],
    },
    9: {
        "straight tail": [[(0.58, 0.12), (0.34, 0.0), (0.08, 0.1), (0.04, 0.3), (0.24, 0.45), (0.5, 0.38),
                           (0.6, 0.1), (0.6, 0.1), (0.58, 1.0)]],
        "curved tail": [[(0.58, 0.12), (0.34, 0.0), (0.08, 0.1), (0.04, 0.3), (0.24, 0.45), (0.5, 0.38),
                         (0.6, 0.1), (0.6, 0.1), (0.6, 0.55), (0.52, 0.85), (0.32, 1.0), (0.1, 0.94)]],
        "loop then stick": [_ellipse(0.32, 0.24, 0.3, 0.24, 20, 370, 12), [(0.62, 0.06), (0.54, 1.0)]],
    },
}


@dataclass(frozen=True)
class Ranges:
    """The variation of a set; each (low, high) is sampled uniformly (see the module docstring)."""

    heights: tuple[tuple[float, float], ...]  # ink height / canvas side; one range drawn at random
    pens: tuple[tuple[int, int], ...]  # pen width px, inclusive; one range drawn at random
    rotation: float  # +- degrees
    slant: float  # +- degrees
    aspect: tuple[float, float]
    wobble: tuple[float, float]  # amplitude / height
    jitter: float  # standard deviation / height


EASY = Ranges(heights=((0.45, 0.80),), pens=((14, 28),), rotation=6, slant=10, aspect=(0.85, 1.15),
              wobble=(0.005, 0.015), jitter=0.003)
HARD = Ranges(heights=((0.15, 0.30), (0.85, 0.98)), pens=((6, 10), (32, 40)), rotation=15, slant=20,
              aspect=(0.75, 1.30), wobble=(0.015, 0.030), jitter=0.006)
SETS = {"easy": (EASY, 1), "hard": (HARD, 2)}  # name -> (ranges, seed)
MAX_PEN_PER_HEIGHT = 0.25


@dataclass(frozen=True)
class Drawing:
    """One drawing's trajectory in canvas px and what was asked of it."""

    digit: int
    style: str
    strokes: list[np.ndarray]  # each (n, 2) float64 x, y in canvas px: the pen's centre
    pen: int  # px
    height: float  # requested ink height, px (pen included)
    rotation: float
    slant: float


def catmull_rom(points, per_segment: int = 16) -> np.ndarray:
    """(k, 2) control points -> (m, 2) a uniform Catmull-Rom curve through them (float64).

    The ends are doubled so the curve starts and ends on the first and last points; a point
    given twice in a row makes a corner (the tangent there is zero)."""
    p = np.asarray(points, dtype=np.float64)
    if len(p) == 1:
        return p.copy()
    p = np.vstack([p[:1], p, p[-1:]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]  # (s, 1)
    t2, t3 = t * t, t * t * t
    p0, p1, p2, p3 = p[:-3], p[1:-2], p[2:-1], p[3:]  # (k-1, 2) each
    c = [(-t3 + 2 * t2 - t) / 2, (3 * t3 - 5 * t2 + 2) / 2, (-3 * t3 + 4 * t2 + t) / 2, (t3 - t2) / 2]
    seg = (c[0][None] * p0[:, None] + c[1][None] * p1[:, None] + c[2][None] * p2[:, None]
           + c[3][None] * p3[:, None])  # (k-1, s, 2)
    return np.vstack([seg.reshape(-1, 2), p[-2:-1]])


def _shake(path: np.ndarray, wobble: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """(m, 2) path in height units -> the same with a smooth wobble along it plus a small tremor."""
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))])  # (m,) arc length
    out = path.copy()
    for axis in range(2):
        k = rng.integers(2, 5)
        freq, phase = rng.uniform(0.4, 1.8, k), rng.uniform(0, 2 * np.pi, k)
        out[:, axis] += wobble * np.sin(2 * np.pi * freq[:, None] * s[None] + phase[:, None]).sum(0) / np.sqrt(k)
    noise = rng.normal(0, jitter, path.shape)
    noise[1:-1] = (noise[:-2] + noise[1:-1] + noise[2:]) / np.sqrt(3)  # smoothed over 3 points
    return out + noise


def _uniform_of(rng, ranges):
    lo, hi = ranges[rng.integers(len(ranges))]
    return lo, hi


def make_drawing(digit: int, style: str, r: Ranges, rng: np.random.Generator) -> Drawing:
    """One drawing of `digit` in `style`, varied within `r`: pen trajectories in canvas px."""
    h_lo, h_hi = _uniform_of(rng, r.heights)
    height = rng.uniform(h_lo, h_hi) * SIDE
    pens = [(lo, min(hi, int(MAX_PEN_PER_HEIGHT * height))) for lo, hi in r.pens
            if lo <= MAX_PEN_PER_HEIGHT * height]
    p_lo, p_hi = _uniform_of(rng, pens)
    pen = int(rng.integers(p_lo, p_hi + 1))
    rotation, slant = rng.uniform(-r.rotation, r.rotation), rng.uniform(-r.slant, r.slant)
    aspect, wobble = rng.uniform(*r.aspect), rng.uniform(*r.wobble)
    strokes = []
    for controls in STYLES[digit][style]:
        path = catmull_rom(controls) * [aspect, 1.0]
        strokes.append(_shake(path, wobble, r.jitter, rng))
    sizes = [len(s) for s in strokes]
    pts = np.vstack(strokes)
    pts[:, 0] += np.tan(np.radians(slant)) * (0.5 - pts[:, 1])  # shear about mid-height
    a = np.radians(rotation)  # counter-clockwise on screen, where y points down
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    pts = (pts - pts.mean(0)) @ rot.T
    lo, hi = pts.min(0), pts.max(0)
    pts = (pts - lo) * ((height - pen) / (hi[1] - lo[1]))  # skeleton height + pen = ink height
    width = pts[:, 0].max()
    if width + pen > SIDE - 4:  # too wide at this height: squeeze to fit
        pts[:, 0] *= (SIDE - 4 - pen) / width
        width = SIDE - 4 - pen
    room = np.array([SIDE - 3 - pen - width, SIDE - 3 - height])  # free px, x and y
    pts += pen / 2 + 1.5 + rng.uniform(0, 1, 2) * np.maximum(room, 0)  # 1.5 px clear of each edge
    return Drawing(digit, style, np.split(pts, np.cumsum(sizes)[:-1]), pen, height, rotation, slant)


def render(drawing: Drawing) -> np.ndarray:
    """Drawing -> (280, 280, 4) uint8 RGBA: white round-capped strokes on opaque black, anti-aliased."""
    big = Image.new("L", (SIDE * SUPER, SIDE * SUPER), 0)
    d = ImageDraw.Draw(big)
    w = drawing.pen * SUPER
    r = w / 2
    for stroke in drawing.strokes:
        xy = stroke * SUPER  # pixel i of the canvas spans [i, i + 1): SUPER sub-pixels
        d.line([tuple(p) for p in xy], fill=255, width=round(w), joint="curve")
        for x, y in (xy[0], xy[-1]):  # round caps
            d.ellipse([x - r, y - r, x + r, y + r], fill=255)
    grey = np.asarray(big.reduce(SUPER))  # box filter: the mean of each 4x4 block
    return np.dstack([grey, grey, grey, np.full_like(grey, 255)])


def drawing_set(name: str, per_digit: int = 100) -> list[Drawing]:
    """The 'easy' or 'hard' set: `per_digit` drawings of each digit, styles in turn, from the set's seed."""
    if name not in SETS:
        raise ValueError(f"set must be one of {sorted(SETS)}, got {name!r}")
    ranges, seed = SETS[name]
    rng = np.random.default_rng(seed)
    out = []
    for digit in range(10):
        names = list(STYLES[digit])
        for i in range(per_digit):
            out.append(make_drawing(digit, names[i % len(names)], ranges, rng))
    return out


def render_set(drawings: list[Drawing]) -> tuple[np.ndarray, np.ndarray]:
    """Drawings -> images (n, 280, 280, 4) uint8 and labels (n,) int64."""
    images = np.stack([render(dr) for dr in drawings])
    return images, np.array([dr.digit for dr in drawings], dtype=np.int64)
