"""Cost of augmentation per batch, each kind alone and all together, against one SGD step
(run by hand; one BLAS thread).

    .venv/bin/python bench/augment.py                 # batches 50 and 128, 300 batches each
    .venv/bin/python bench/augment.py --batches 50    # quicker

Prints milliseconds per batch (median over the batches, after a warm-up) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from threadpoolctl import threadpool_limits  # noqa: E402

from mnistnet import MLP, TrainConfig, load_mnist  # noqa: E402
from mnistnet.augment import Augmenter  # noqa: E402
from mnistnet.train import Stepper, _Shifter  # noqa: E402

# name -> TrainConfig fields: the settings the README and the Train page suggest.
KINDS = {
    "shift 2 px (integer, _Shifter)": {"shift_pixels": 2},
    "rotate 15 deg": {"rotate_degrees": 15.0},
    "scale 0.15": {"scale": 0.15},
    "shear 15 deg": {"shear_degrees": 15.0},
    "translate 2 px": {"translate_pixels": 2.0},
    "thickness 0.5": {"thickness": 0.5},
    "elastic alpha 34 sigma 4": {"elastic_alpha": 34.0, "elastic_sigma": 4.0},
    "all of them": {"rotate_degrees": 15.0, "scale": 0.15, "shear_degrees": 15.0, "translate_pixels": 2.0,
                    "thickness": 0.5, "elastic_alpha": 34.0, "elastic_sigma": 4.0},
}


def median_ms(fn, batches: int, warmup: int = 20) -> float:
    """fn(i) called warmup + batches times -> median milliseconds of the timed calls."""
    for i in range(warmup):
        fn(i)
    times = []
    for i in range(batches):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def measure(model: MLP, images: np.ndarray, bs: int, rng: np.random.Generator, batches: int) -> dict:
    """Median ms per batch of `bs` images: each augmentation, a plain gather, one SGD step."""
    idx = [rng.choice(len(images), bs, replace=False) for _ in range(64)]  # 64 random batches
    out = np.empty((bs, 784), np.float32)
    row = {}
    for name, fields in KINDS.items():
        cfg = TrainConfig(**fields)
        aug = (_Shifter(model, images, cfg.shift_pixels) if set(fields) == {"shift_pixels"}
               else Augmenter(images, cfg, model.pixel_table()))
        row[name] = median_ms(lambda i, aug=aug: aug.batch(idx[i % 64], rng, out), batches)
    table = model.pixel_table()
    row["no augmentation (gather)"] = median_ms(
        lambda i: np.take(table, images[idx[i % 64]].reshape(bs, -1), out=out), batches)
    stepper = Stepper(model, TrainConfig(momentum=0.9), bs)
    x, y = model.scale_inputs(images[:bs]), np.zeros(bs, np.int64)

    def step(i):
        stepper.loss(x, y)
        stepper.update(y, 0.01, 0.01)

    row["SGD step 784-512-256-10"] = median_ms(step, batches)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 128])
    p.add_argument("--batches", type=int, default=300)
    args = p.parse_args()
    images = load_mnist().train.images  # (50000, 28, 28) uint8
    model = MLP((784, 512, 256, 10), seed=0)
    rng = np.random.default_rng(0)
    result = {}
    with threadpool_limits(1):
        for bs in args.sizes:
            result[bs] = measure(model, images, bs, rng, args.batches)
            print(f"batch {bs}:")
            for name, ms in result[bs].items():
                print(f"  {name:34s} {ms:7.3f} ms")
    print(json.dumps({"threads": 1, "batches": args.batches, "ms_per_batch": result}))


if __name__ == "__main__":
    main()
