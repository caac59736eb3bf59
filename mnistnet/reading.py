"""Reading a drawing: the network's answer, or a hint when the drawing is no digit to read.

Imports numpy and the core's own modules. The rule (measured on bench/drawn.py's stroke-drawn
digits, whose smallest are 15% of the canvas drawn with a pen of 6-10 px):

- too small: the ink's bounding box, its longer side under MIN_SIDE of the canvas side, or
  under MIN_SIDE_PER_PEN times the pen's width (the pen hardly moved: a dot or a blob);
- unsure: the network's top probability under UNSURE_BELOW; the two likeliest digits are named.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .drawing import INK_LEVEL, ink_intensity, preprocess_drawing

# Chosen on bench/drawn.py: a dot of the default 20 px pen spans 8% of the 280 px canvas, a tiny
# scribble about 10%; the benchmark's smallest digits 15.4% (none under 15%).
MIN_SIDE = 0.12
# Dots span 1.1-1.25 pen widths (as measured here) and scribbles under 40 px 1.2-1.6; the
# benchmark's digits at least 2.25 (a tiny digit's crossing measures wider than its pen).
MIN_SIDE_PER_PEN = 1.8
# The seed preset on the benchmark: under 0.6 are 33 of its 42 misreads of the hard set and 10 of
# its 10 on easy, and 4% (hard) and 1.3% (easy) of its right readings.
UNSURE_BELOW = 0.6
BLANK, TOO_SMALL, UNSURE, SURE = "blank", "too small", "unsure", "sure"


@dataclass(frozen=True)
class Ink:
    """What the rule needs of a drawing's ink, in px of its canvas."""

    longer_side: int  # the ink box's longer side
    pen: float  # the widest stroke: twice the erosions that empty the ink
    canvas_side: int  # the canvas's longer side


@dataclass(frozen=True)
class Reading:
    """A drawing read: `kind` is BLANK, TOO_SMALL, UNSURE or SURE; `message` one sentence for people."""

    kind: str
    message: str
    digit: np.ndarray | None = None  # (28, 28) uint8 as the network sees it; None when blank
    probs: np.ndarray | None = None  # (10,) float32; None when blank or too small

    @property
    def top_two(self) -> tuple[int, int]:
        """The two likeliest digits, likeliest first."""
        order = np.argsort(self.probs)[::-1]
        return int(order[0]), int(order[1])


def _erode(mask: np.ndarray, diagonal: bool) -> np.ndarray:
    """(h, w) bool -> (h, w) bool: pixels whose 4 (or 8) neighbours are all ink; outside is none."""
    p = np.pad(mask, 1)
    out = mask & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    if diagonal:
        out &= p[:-2, :-2] & p[:-2, 2:] & p[2:, :-2] & p[2:, 2:]
    return out


def ink_extent(image: np.ndarray) -> Ink | None:
    """Canvas image (H, W, 4) RGBA or (H, W) grey uint8 -> its Ink, or None if there is no ink.

    The pen's width is measured by eroding the ink until none is left, alternating 4- and
    8-neighbour steps (a near-round brush): the widest spot, so a crossing counts a bit wider.
    """
    mask = ink_intensity(image) >= INK_LEVEL  # the ink preprocess_drawing crops to
    if not mask.any():
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    mask = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    steps = 0
    while mask.any():
        mask = _erode(mask, diagonal=steps % 2 == 1)
        steps += 1
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    return Ink(longer_side=int(side), pen=2.0 * steps, canvas_side=int(max(image.shape[:2])))


def too_small(ink: Ink) -> bool:
    """True when the ink is too small to read: a short longer side, or one of under 1.8 pen widths."""
    return ink.longer_side < MIN_SIDE * ink.canvas_side or ink.longer_side < MIN_SIDE_PER_PEN * ink.pen


def drawing_hint(ink: Ink, probs: np.ndarray) -> str:
    """The rule: TOO_SMALL, UNSURE or SURE for a drawing's Ink and the network's (10,) float32
    probabilities of it."""
    if too_small(ink):
        return TOO_SMALL
    return UNSURE if float(np.max(probs)) < UNSURE_BELOW else SURE


def read_drawing(image: np.ndarray | None, model) -> Reading:
    """Canvas image (H, W, 4) RGBA or (H, W) grey uint8, or None -> a Reading by `model` (an MLP).

    BLANK: nothing drawn; TOO_SMALL: a dot or a scribble too small to read (no probabilities);
    otherwise the 28x28 digit and its probabilities, UNSURE when the top one is under UNSURE_BELOW.
    """
    digit = None if image is None else preprocess_drawing(image)
    ink = None if digit is None else ink_extent(image)
    if ink is None:
        return Reading(BLANK, "Draw a digit from 0 to 9 on the black square.")
    if too_small(ink):
        return Reading(TOO_SMALL, "Draw bigger: this is too small to read as a digit, so fill most "
                                  "of the black square.", digit)
    probs = model.predict_proba(digit[None])[0]
    kind = drawing_hint(ink, probs)
    best, second = (int(i) for i in np.argsort(probs)[::-1][:2])
    message = (f"{best} or {second}?" if kind == UNSURE
               else f"The network reads {best} with {100 * probs[best]:.1f}% confidence.")
    return Reading(kind, message, digit, probs)
