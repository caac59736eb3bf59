"""The Sweep page's pieces: its form's text -> a SweepSpec (one message per bad field), the
results table, and two figures: parallel coordinates of what was tried against test accuracy,
and accuracy against training time.

Imports plotly and mnistnet only; figures take plain data (store run rows).
"""

from __future__ import annotations

import plotly.graph_objects as go

from mnistnet.data import DATASETS
from mnistnet.sweep import MAX_RUNS, SEARCHED, SweepSpec, network, plan
from ui.figures import _layout

FIELDS = {  # form field -> (label, parse one value, default text)
    "hidden": ("Networks (hidden sizes or a line, separated by ';': 512-256; conv 8x5 - pool - dense 128)", None,
               "512-256; 256-128"),
    "learning_rate": ("Learning rates", float, "0.05, 0.13"),
    "batch_size": ("Batch sizes", int, "50"),
    "epochs": ("Epochs", int, "2"),
    "momentum": ("Momentum", float, "0"),
    "weight_decay": ("Weight decay", float, "0"),
    "shift_pixels": ("Random shifts (px)", int, "0"),
    "seed": ("Seeds", int, "0, 1"),
}
MAX_VALUES = 8  # values per field: 8 in each of the 8 fields and 2 schedules is 2**25 combinations
MAX_CHARS = 200  # characters per field, checked before the text is split
__all__ = ["DATASETS", "FIELDS", "MAX_CHARS", "MAX_RUNS", "MAX_VALUES", "parse", "table_rows", "parallel_figure",
           "time_figure", "best"]


def _values(text: str, cast, sep=","):
    text = str(text)
    if len(text) > MAX_CHARS:  # before splitting: 10,000 values are never made into a list
        raise ValueError(f"at most {MAX_CHARS} characters, got {len(text):,}")
    items = [t.strip() for t in text.split(sep) if t.strip()]
    if not items:
        raise ValueError("give at least one value")
    if len(items) > MAX_VALUES:
        raise ValueError(f"at most {MAX_VALUES} values, got {len(items)}")
    return tuple(cast(t) for t in items)


class _BadLine(ValueError):
    """A network line's own message (it names the bad token)."""


def _hidden(text: str):
    def one(t):
        if any(ch.isalpha() for ch in t):  # a line: 'conv 8x5 - pool - dense 128'
            try:
                return network(t)
            except ValueError as e:
                raise _BadLine(f"{t!r}: {e}") from None
        widths = tuple(int(w) for w in t.replace(",", "-").split("-") if w.strip())
        if not widths:
            raise ValueError
        return widths
    return _values(text, one, sep=";")


def parse(texts: dict, schedules: list[str], mode: str, n: int, train_size: int,
          n_train: int, dataset: str = "mnist") -> tuple[SweepSpec | None, dict]:
    """Form values -> (spec, errors by field; "sweep" for the whole). spec is None on errors."""
    values, errors = {}, {}
    for name, (label, cast, _) in FIELDS.items():
        try:
            values[name] = _hidden(texts[name]) if name == "hidden" else _values(texts[name], cast)
        except _BadLine as e:
            errors[name] = f"{label.split(' (')[0]}: {e}"
        except ValueError as e:
            said = str(e) if str(e).startswith(("give", "at most")) else "not a list of numbers"
            errors[name] = f"{label.split(' (')[0]}: {said} (got {str(texts[name])[:60]!r})"
    if not schedules:
        errors["lr_schedule"] = "Learning-rate schedules: choose at least one"
    if errors:
        return None, errors
    spec = SweepSpec(**values, lr_schedule=tuple(schedules), mode=mode, n=n if mode == "random" else None,
                     train_size=train_size if train_size < n_train else None, dataset=dataset)
    try:
        plan(spec, n_train)
    except ValueError as e:
        return None, {"sweep": str(e)[:1].upper() + str(e)[1:]}
    return spec, {}


def _label(name: str) -> str:
    return {"hidden": "network", "learning_rate": "lr", "batch_size": "batch", "epochs": "epochs",
            "momentum": "momentum", "lr_schedule": "schedule", "weight_decay": "weight decay",
            "shift_pixels": "shifts", "seed": "seed"}[name]


def _value(run: dict, name: str):
    if name == "hidden":  # a line for a network with conv layers, else the hidden widths
        return (run.get("spec") or {}).get("net") or "-".join(map(str, run["layer_sizes"][1:-1]))
    return run["config"][name]


def _seconds(run: dict) -> float | None:
    if run["running_at"] is None or run["ended_at"] is None:
        return None
    return run["ended_at"] - run["running_at"]


def table_rows(runs: list[dict]) -> list[dict]:
    """One row per run: status, test accuracy and every choice the sweep made."""
    out = []
    for r in sorted(runs, key=lambda r: r["id"]):
        p = r["progress"] or {}
        row = {"run": r["id"], "status": r["status"],
               "test accuracy": round(100 * r["test_accuracy"], 2) if r["test_accuracy"] is not None else None,
               "progress": (f"epoch {p.get('epoch')}/{p.get('epochs')}" if r["status"] == "running" and p else ""),
               "seconds": round(s, 1) if (s := _seconds(r)) is not None else None}
        row.update({_label(n): _value(r, n) for n in ("hidden", *SEARCHED)})
        out.append(row)
    return out


def best(runs: list[dict]) -> dict | None:
    done = [r for r in runs if r["test_accuracy"] is not None and r["model_id"] is not None]
    return max(done, key=lambda r: r["test_accuracy"]) if done else None


def parallel_figure(runs: list[dict], varied: list[str]) -> go.Figure:
    """One line per run with a measured epoch: each varied choice, then test accuracy."""
    done = [r for r in runs if r["test_accuracy"] is not None]
    dims = []
    for name in varied or ["learning_rate"]:
        vals = [_value(r, name) for r in done]
        if all(isinstance(v, (int, float)) for v in vals):
            dims.append(dict(label=_label(name), values=vals))
        else:  # categories (hidden sizes, schedules) as evenly spaced ticks
            cats = sorted({str(v) for v in vals})
            dims.append(dict(label=_label(name), values=[cats.index(str(v)) for v in vals],
                             tickvals=list(range(len(cats))), ticktext=cats))
    acc = [100 * r["test_accuracy"] for r in done]
    dims.append(dict(label="test accuracy %", values=acc))
    fig = go.Figure(go.Parcoords(dimensions=dims, line=dict(color=acc, colorscale="Viridis", showscale=True)))
    fig.update_layout(title=dict(text="What was tried, and the test accuracy it reached", x=0), height=380,
                      margin=dict(l=60, r=60, t=80, b=30))
    return fig


def time_figure(runs: list[dict]) -> go.Figure:
    """Test accuracy against the run's wall time on its worker."""
    done = [r for r in runs if r["test_accuracy"] is not None and _seconds(r) is not None]
    fig = go.Figure(go.Scatter(
        x=[_seconds(r) for r in done], y=[100 * r["test_accuracy"] for r in done], mode="markers+text",
        text=[f"#{r['id']}" for r in done], textposition="top center", marker=dict(size=10, color="#d62728"),
        hovertemplate="run %{text}: %{y:.2f}% in %{x:.1f} s<extra></extra>"))
    fig = _layout(fig, "Test accuracy against training time", "seconds on its worker", "test accuracy (%)")
    fig.update_layout(hovermode="closest")
    return fig
