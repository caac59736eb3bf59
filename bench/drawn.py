"""Accuracy on stroke-drawn digits rendered like the Draw page's canvas (run by hand).

    .venv/bin/python bench/drawn.py --preset seed             # train the preset, then measure
    .venv/bin/python bench/drawn.py --model a.npz --model b.npz --preset best

Each drawing goes the Draw page's way: canvas image -> preprocess_drawing -> predict_proba.
The sets (bench/strokes.py: 'easy' and 'hard', 1,000 drawings each, fixed seeds) were fixed
before any model was measured. Prints accuracy per model on each set, the errors per digit
on hard, how mnistnet.reading's hints fall, and saves contact sheets to artifacts/drawn/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from threadpoolctl import threadpool_limits  # noqa: E402

from bench import strokes  # noqa: E402
from mnistnet import MLP, load_mnist, load_model, preprocess_drawing, preset, train  # noqa: E402
from mnistnet import reading as rd  # noqa: E402

OUT = ROOT / "artifacts" / "drawn"
TILE = 96  # px of one drawing on a contact sheet


def prepare(name: str, per_digit: int):
    """A set -> (images (n, 280, 280, 4) uint8, labels (n,), digits (n, 28, 28) uint8, inks)."""
    t0 = time.perf_counter()
    images, labels = strokes.render_set(strokes.drawing_set(name, per_digit))
    t1 = time.perf_counter()
    digits = [preprocess_drawing(im) for im in images]
    assert all(d is not None for d in digits), "a drawing came out blank"
    inks = [rd.ink_extent(im) for im in images]
    print(f"{name}: {len(images):,} drawings rendered in {t1 - t0:.1f} s, prepared in "
          f"{time.perf_counter() - t1:.1f} s", flush=True)
    return images, labels, np.stack(digits), inks


def ink_report(name: str, inks) -> dict:
    """The too-small rule on a set of real digits: how close the digits come to it."""
    side = np.array([i.longer_side / i.canvas_side for i in inks])
    per_pen = np.array([i.longer_side / i.pen for i in inks])
    flagged = sum(rd.too_small(i) for i in inks)
    print(f"  {name}: ink box longer side {side.min() * 100:.1f}%..{side.max() * 100:.1f}% of the canvas; "
          f"side / pen {per_pen.min():.2f}..{per_pen.max():.1f}; called too small: {flagged}")
    return {"min_side": float(side.min()), "min_side_per_pen": float(per_pen.min()), "too_small": int(flagged)}


def sheet(images, captions, path: Path, per_row: int = 10) -> None:
    """Contact sheet of (n, 280, 280, 4) drawings with a caption under each."""
    n = len(images)
    rows = max(1, -(-n // per_row))
    out = Image.new("L", (per_row * (TILE + 4), rows * (TILE + 18)), 60)
    d = ImageDraw.Draw(out)
    for i, (im, cap) in enumerate(zip(images, captions)):
        x, y = (i % per_row) * (TILE + 4) + 2, (i // per_row) * (TILE + 18) + 2
        out.paste(Image.fromarray(im[..., 0]).resize((TILE, TILE), Image.BOX), (x, y))
        d.text((x + 2, y + TILE + 2), cap, fill=255)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)


def measure(label: str, model, sets: dict) -> dict:
    result = {"model": label}
    for name, (images, labels, digits, _) in sets.items():
        probs = model.predict_proba(digits)  # (n, 10) float32
        pred = probs.argmax(1)
        wrong = pred != labels
        top = probs.max(1)
        result[name] = {"correct": int((~wrong).sum()), "total": len(labels),
                        "accuracy": float((~wrong).mean()),
                        "errors_per_digit": [int(wrong[labels == k].sum()) for k in range(10)],
                        "unsure_right": int((top[~wrong] < rd.UNSURE_BELOW).sum()),
                        "unsure_wrong": int((top[wrong] < rd.UNSURE_BELOW).sum())}
        r = result[name]
        print(f"  {label} {name}: {r['correct']:,}/{r['total']:,} = {100 * r['accuracy']:.2f}%; "
              f"'unsure' (top < {rd.UNSURE_BELOW:.2f}) on {r['unsure_wrong']} of {int(wrong.sum())} misreads "
              f"and {r['unsure_right']} of {int((~wrong).sum())} right readings", flush=True)
        for cut in (0.5, 0.6, 0.7, 0.8, 0.9):
            print(f"      top < {cut:.1f}: {int((top[wrong] < cut).sum())} misreads, "
                  f"{int((top[~wrong] < cut).sum())} right readings")
        idx = np.flatnonzero(wrong)[:80]
        caps = [f"{labels[i]} read {pred[i]} {100 * top[i]:.0f}%" for i in idx]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(label).stem)
        sheet(images[idx], caps, OUT / f"misread-{safe}-{name}.png")
    print(f"  {label} hard errors per digit: {result['hard']['errors_per_digit']}")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], help="a model file (.npz); repeatable")
    p.add_argument("--preset", action="append", default=[], help="train this preset first; repeatable")
    p.add_argument("--per-digit", type=int, default=100, help="drawings per digit and set")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads for training")
    args = p.parse_args()
    if not args.model and not args.preset:
        p.error("give at least one --model or --preset")
    sets = {name: prepare(name, args.per_digit) for name in ("easy", "hard")}
    inks = {name: ink_report(name, s[3]) for name, s in sets.items()}
    for name, (images, labels, _, _) in sets.items():
        pick = np.concatenate([np.flatnonzero(labels == k)[:10] for k in range(10)])
        caps = [f"{strokes_name(i, args.per_digit, name)}" for i in pick]
        sheet(images[pick], caps, OUT / f"sample-{name}.png")
    results = []
    for path in args.model:
        results.append(measure(path, load_model(path), sets))
    if args.preset:
        data = load_mnist()
        for name in args.preset:
            hidden, config = preset(name)
            model = MLP((784, *hidden, 10), seed=config.seed)
            t0 = time.perf_counter()
            with threadpool_limits(args.threads):
                train(model, data, config)
            test = model.history.epochs[-1]["test"]
            print(f"preset {name}: trained in {time.perf_counter() - t0:.1f} s, MNIST test "
                  f"{test['correct']:,}/{test['total']:,}", flush=True)
            results.append(measure(f"preset-{name}", model, sets))
    print(f"contact sheets in {OUT}")
    print(json.dumps({"ink": inks, "unsure_below": rd.UNSURE_BELOW, "results": results}))


def strokes_name(i: int, per_digit: int, name: str) -> str:
    """Caption of a sample: its digit and style (drawings are made in order, styles in turn)."""
    digit, k = divmod(int(i), per_digit)
    styles = list(strokes.STYLES[digit])
    return f"{digit} {styles[k % len(styles)]}"


if __name__ == "__main__":
    main()
