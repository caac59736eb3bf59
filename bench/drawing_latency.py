"""Latency of the Draw page's core work: preprocess_drawing + predict_proba on a 280x280 canvas.

Run by hand: `.venv/bin/python bench/drawing_latency.py [--runs 200] [--model model.npz]`.
Without --model it trains the default 784-256-128-10 network for one epoch first. Two kinds
of canvas, each timed over --runs different digits: MNIST test digits upscaled to an opaque
280x280 RGBA canvas (white ink on black), and a thick pen stroke drawn with Pillow on a
transparent RGBA canvas. Target: median <= 5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from mnistnet import MLP, TrainConfig, load_mnist, load_model, preprocess_drawing, train

CANVAS = 280
# Strokes of a hand-drawn 7, 1, 4 and 0 on a 280 canvas: (points, is_closed_ellipse).
STROKES = {
    7: [(60, 60), (210, 60), (120, 230)],
    1: [(140, 40), (140, 240)],
    4: [(170, 40), (70, 170), (220, 170), (170, 170), (170, 40), (170, 240)],
}


def mnist_canvas(digit: np.ndarray) -> np.ndarray:
    """digit: (28, 28) uint8 -> (280, 280, 4) uint8 opaque RGBA, white ink on black, bilinear upscale."""
    grey = np.asarray(Image.fromarray(digit).resize((CANVAS, CANVAS), Image.BILINEAR))
    rgba = np.empty((CANVAS, CANVAS, 4), np.uint8)
    rgba[..., :3] = grey[..., None]
    rgba[..., 3] = 255
    return rgba


def stroke_canvas(label: int, rng: np.random.Generator) -> np.ndarray:
    """A pen-drawn digit (0 is an ellipse) on a transparent (280, 280, 4) uint8 RGBA canvas."""
    img = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    jitter = rng.integers(-15, 16, size=2)
    width = int(rng.integers(14, 24))
    if label == 0:
        box = [80 + jitter[0], 50 + jitter[1], 200 + jitter[0], 230 + jitter[1]]
        draw.ellipse([int(v) for v in box], outline=(255, 255, 255, 255), width=width)
    else:
        pts = [(int(x + jitter[0]), int(y + jitter[1])) for x, y in STROKES[label]]
        draw.line(pts, fill=(255, 255, 255, 255), width=width, joint="curve")
    return np.asarray(img)


def time_canvases(model: MLP, canvases: list[np.ndarray]) -> tuple[list[float], list[int]]:
    """Seconds of preprocess_drawing + predict_proba for each canvas, and the predicted digits."""
    times, preds = [], []
    for canvas in canvases:
        t0 = time.perf_counter()
        x = preprocess_drawing(canvas)  # (28, 28) uint8
        probs = model.predict_proba(x[None])  # (1, 10) float32
        times.append(time.perf_counter() - t0)
        preds.append(int(probs[0].argmax()))
    return times, preds


def report(name: str, times: list[float], preds: list[int], labels: list[int]) -> float:
    ms = sorted(t * 1000 for t in times)
    med = statistics.median(ms)
    p90 = ms[int(0.9 * (len(ms) - 1))]
    right = sum(p == y for p, y in zip(preds, labels))
    print(f"  {name:28s} median {med:.2f} ms  p90 {p90:.2f} ms  max {ms[-1]:.2f} ms  "
          f"({len(ms)} runs; predicted right {right}/{len(labels)})")
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="canvases per kind (>= 1)")
    ap.add_argument("--model", type=Path, help="a saved model (.npz); default: train 784-256-128-10 for 1 epoch")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error(f"--runs must be >= 1, got {args.runs}")
    data = load_mnist()
    with threadpool_limits(limits=args.threads):
        if args.model:
            model = load_model(args.model)
        else:
            model = MLP((784, 256, 128, 10), seed=0)
            hist = train(model, data, TrainConfig(epochs=1))
            print(f"trained 784-256-128-10 for 1 epoch: test accuracy {hist.last()['accuracy']:.2%}")
        rng = np.random.default_rng(0)
        picks = rng.choice(len(data.test), size=args.runs, replace=False)
        mnist = [mnist_canvas(data.test.images[i]) for i in picks]
        mnist_labels = [int(data.test.labels[i]) for i in picks]
        stroke_labels = [int(v) for v in rng.choice([0, 1, 4, 7], size=args.runs)]
        strokes = [stroke_canvas(y, rng) for y in stroke_labels]
        time_canvases(model, mnist[:10])  # warm-up: first calls load Pillow's resamplers
        print(f"preprocess_drawing + predict_proba, one {CANVAS}x{CANVAS} RGBA canvas per call:")
        med_a = report("MNIST digits, opaque", *time_canvases(model, mnist), mnist_labels)
        med_b = report("pen strokes, transparent", *time_canvases(model, strokes), stroke_labels)
    worst = max(med_a, med_b)
    print(f"worst median {worst:.2f} ms: {'meets' if worst <= 5 else 'misses'} the 5 ms target")


if __name__ == "__main__":
    main()
