"""Evaluation metrics as plain data: exact counts, per-digit errors, confusion matrix.

Pure functions over numpy arrays; imports numpy and network only.
"""

from __future__ import annotations

import numpy as np

from .network import MLP, N_CLASSES, log_softmax


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """y_true, y_pred: (n,) ints in 0..9 -> (10, 10) int64 counts, rows = true, cols = predicted."""
    idx = np.asarray(y_true, dtype=np.int64) * N_CLASSES + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(idx, minlength=N_CLASSES * N_CLASSES).reshape(N_CLASSES, N_CLASSES)


def per_digit_errors(confusion: np.ndarray) -> np.ndarray:
    """(10, 10) counts -> (10,) int64 misclassified images of each true digit."""
    return confusion.sum(axis=1) - np.diag(confusion)


class Evaluator:
    """Metrics of one model on scaled inputs, `chunk` rows at a time, in buffers kept across calls.

    A training run measures train, val and test after every epoch: fresh (10000, hidden)
    arrays for each chunk cost page faults comparable to the products, so they are made once.
    """

    def __init__(self, model: MLP, chunk: int = 10000):
        self.model, self.chunk = model, chunk
        if not isinstance(model, MLP):  # a Net (mnistnet.net): its own layers, its own chunks
            self.acts = None
            return
        dtype = model.weights[0].dtype  # float32 (float64 only in gradient checks)
        self.acts = [np.empty((chunk, s), dtype=dtype) for s in model.layer_sizes[1:]]  # (chunk, size)

    def evaluate(self, Xs: np.ndarray, y: np.ndarray) -> dict:
        """Xs: (n, 784) float32 already scaled by the model, y: (n,) int64 -> metrics as plain data.

        Returns loss (mean NLL), accuracy, correct, total, per_digit_errors (10 ints) and
        confusion (10 x 10 ints), as `summarize`.
        """
        n = len(y)
        nll_sum = 0.0
        pred = np.empty(n, dtype=np.int64)
        weights, biases = self.model.weights, self.model.biases
        for start in range(0, n, self.chunk):
            h = Xs[start:start + self.chunk]
            m = len(h)
            if self.acts is None:
                h = self.model.logits(h)
            else:
                for i, (W, b) in enumerate(zip(weights, biases)):
                    out = self.acts[i][:m]
                    np.matmul(h, W, out=out)
                    out += b
                    if i < len(weights) - 1:
                        np.maximum(out, 0, out=out)
                    h = out
            logp = log_softmax(h)  # (m, 10): small next to the products
            yy = y[start:start + m]
            nll_sum -= float(logp[np.arange(m), yy].sum(dtype=np.float64))
            pred[start:start + m] = logp.argmax(axis=1)
        return summarize(y, pred, nll_sum / max(n, 1))


def evaluate_scaled(model: MLP, Xs: np.ndarray, y: np.ndarray, chunk: int = 10000) -> dict:
    """Xs: (n, 784) float32 already scaled by the model, y: (n,) int64 -> metrics as plain data
    (see Evaluator.evaluate); for one evaluation. Xs is cast to the weights' dtype."""
    Xs = np.asarray(Xs, dtype=model.weights[0].dtype)
    return Evaluator(model, min(chunk, max(len(y), 1))).evaluate(Xs, y)


def summarize(y: np.ndarray, pred: np.ndarray, loss: float) -> dict:
    """Labels and predictions (n,) -> the metrics dict that `evaluate_scaled` returns."""
    cm = confusion_matrix(y, pred)
    correct = int(np.trace(cm))
    total = int(len(y))
    return {
        "loss": float(loss),
        "accuracy": correct / total if total else 0.0,
        "correct": correct,
        "total": total,
        "per_digit_errors": per_digit_errors(cm).tolist(),
        "confusion": cm.tolist(),
    }


def per_digit_table(confusion) -> list[dict]:
    """(10, 10) counts -> one row per digit: support, errors, precision, recall."""
    cm = np.asarray(confusion, dtype=np.int64)
    rows = []
    for d in range(N_CLASSES):
        tp, support, predicted = int(cm[d, d]), int(cm[d].sum()), int(cm[:, d].sum())
        rows.append({
            "digit": d,
            "support": support,
            "errors": support - tp,
            "precision": tp / predicted if predicted else float("nan"),
            "recall": tp / support if support else float("nan"),
        })
    return rows


def most_confused(confusion, k: int = 5) -> list[tuple[int, int, int]]:
    """(10, 10) counts -> the k largest off-diagonal cells as (true, predicted, count), count > 0."""
    cm = np.asarray(confusion, dtype=np.int64).copy()
    np.fill_diagonal(cm, 0)
    order = np.argsort(cm, axis=None, kind="stable")[::-1][:k]
    pairs = [(int(i // N_CLASSES), int(i % N_CLASSES), int(cm.flat[i])) for i in order]
    return [p for p in pairs if p[2] > 0]
