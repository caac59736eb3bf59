"""Plotly figures that overlay several runs (the Runs page). Each takes plain data:
runs = [(label, epochs)] with epochs a list of History epoch records. A label is plain text
(it may hold a visitor's run name): it is escaped here, so Plotly shows it as written.

Imports plotly and ui.plain only.
"""

from __future__ import annotations

import plotly.graph_objects as go

from ui.figures import DIGIT_COLOURS, _layout
from ui.plain import html

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]


def overlay_figure(runs: list[tuple[str, list[dict]]], split: str, key: str, title: str, y: str) -> go.Figure:
    """One line per run: epochs[split][key] against the epoch number."""
    fig = go.Figure()
    for i, (label, epochs) in enumerate(runs):
        fig.add_trace(go.Scatter(x=[e["epoch"] for e in epochs], y=[e[split][key] for e in epochs],
                                 mode="lines+markers", name=html(label), line=dict(color=PALETTE[i % len(PALETTE)])))
    fig = _layout(fig, title, "epoch", y)
    if key == "accuracy":
        fig.update_yaxes(tickformat=".1%")
    return fig


def digit_errors_overlay(runs: list[tuple[str, list[dict]]], split: str = "test") -> go.Figure:
    """Per-digit errors against epoch: one colour per digit, one dash style per run."""
    dashes = ["solid", "dash", "dot", "dashdot", "longdash"]
    fig = go.Figure()
    for r, (label, epochs) in enumerate(runs):
        for d in range(10):
            fig.add_trace(go.Scatter(
                x=[e["epoch"] for e in epochs], y=[e[split]["per_digit_errors"][d] for e in epochs],
                mode="lines", name=f"{d} · {html(label)}", legendgroup=label,
                line=dict(color=DIGIT_COLOURS[d], dash=dashes[r % len(dashes)])))
    return _layout(fig, f"Errors per digit ({'test' if split == 'test' else 'training'} set)",
                   "epoch", "misclassified images", height=420)
