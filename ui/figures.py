"""Plotly figure builders. Each takes plain data (lists, dicts, numpy arrays) and returns a
`plotly.graph_objects.Figure`, so it can be tested without a browser.

Imports plotly and numpy only.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

DIGIT_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
SPLIT_COLOURS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
_MARGIN = dict(l=10, r=10, t=50, b=10)


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 340) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0, xanchor="left"), height=height, margin=_MARGIN,
                      legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0),
                      hovermode="x unified")
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    return fig


def _epoch_axis(fig: go.Figure, epochs: list[dict], total_epochs: int | None) -> None:
    """x from 0 to the run's last epoch (so a live chart grows into a fixed frame), with a
    tick on every epoch while there are few."""
    last = max(total_epochs or 0, len(epochs))
    if last:
        fig.update_xaxes(range=[0, last * 1.02])
    else:
        fig.update_xaxes(rangemode="tozero")
    if last <= 12:
        fig.update_xaxes(tick0=0, dtick=1)


def _epoch_x(epochs: list[dict], batch_losses: list[list[float]], n_train: int) -> list[float]:
    """x of each epoch record: its number, or for a stopped (partial) epoch where it stopped."""
    xs = []
    for rec in epochs:
        if rec.get("partial") and batch_losses and n_train:
            xs.append(batch_losses[-1][0] / n_train)
        else:
            xs.append(float(rec["epoch"]))
    return xs


def smooth(values, weight: float = 0.8) -> list[float]:
    """Exponential moving average, debiased so the first points are not pulled towards 0."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** i))
    return out


def loss_figure(epochs: list[dict], batch_losses: list[list[float]], n_train: int,
                total_epochs: int | None = None) -> go.Figure:
    """Mean loss vs epoch: train, validation and test per epoch, plus the smoothed batch loss.

    epochs: History.epochs; batch_losses: [[samples seen, mean loss], ...]; n_train: images
    per epoch (batch points are drawn at fractional epochs samples_seen / n_train);
    total_epochs: the run's length, the x axis's extent.
    """
    fig = go.Figure()
    if batch_losses:
        bx = [s / n_train for s, _ in batch_losses]
        fig.add_trace(go.Scatter(x=bx, y=smooth([v for _, v in batch_losses]), mode="lines",
                                 name="training batches (smoothed)",
                                 line=dict(color="#9ecae1", width=1.5)))
    xs = _epoch_x(epochs, batch_losses, n_train)
    for split in ("train", "val", "test"):
        fig.add_trace(go.Scatter(x=xs, y=[r[split]["loss"] for r in epochs], mode="lines+markers",
                                 name=SPLIT_NAMES[split], line=dict(color=SPLIT_COLOURS[split])))
    _layout(fig, "Average loss", "epoch", "mean NLL")
    _epoch_axis(fig, epochs, total_epochs)
    return fig


def accuracy_figure(epochs: list[dict], batch_losses=(), n_train: int = 0,
                    total_epochs: int | None = None) -> go.Figure:
    """Accuracy (%) vs epoch on the training, validation and test sets."""
    fig = go.Figure()
    xs = _epoch_x(epochs, list(batch_losses), n_train)
    for split in ("train", "val", "test"):
        recs = [r[split] for r in epochs]
        fig.add_trace(go.Scatter(
            x=xs, y=[100 * m["accuracy"] for m in recs], mode="lines+markers",
            name=SPLIT_NAMES[split], line=dict(color=SPLIT_COLOURS[split]),
            customdata=[[m["correct"], m["total"]] for m in recs],
            hovertemplate="%{y:.2f}% (%{customdata[0]:,} / %{customdata[1]:,})"))
    _layout(fig, "Accuracy", "epoch", "accuracy (%)")
    _epoch_axis(fig, epochs, total_epochs)
    return fig


def digit_errors_figure(epochs: list[dict], split: str = "test", batch_losses=(),
                        n_train: int = 0, total_epochs: int | None = None) -> go.Figure:
    """Misclassified images of each true digit vs epoch on `split` (10 lines)."""
    fig = go.Figure()
    xs = _epoch_x(epochs, list(batch_losses), n_train)
    for d in range(10):
        fig.add_trace(go.Scatter(x=xs, y=[r[split]["per_digit_errors"][d] for r in epochs],
                                 mode="lines+markers", name=str(d),
                                 line=dict(color=DIGIT_COLOURS[d])))
    _layout(fig, f"{SPLIT_NAMES[split].capitalize()}-set errors per digit", "epoch", "errors")
    fig.update_layout(legend=dict(title_text="digit", orientation="v", y=1, yanchor="top",
                                  x=1.02, xanchor="left"))
    _epoch_axis(fig, epochs, total_epochs)
    return fig


def confusion_figure(confusion, normalise: bool = False, selected: tuple[int, int] | None = None,
                     height: int = 520, classes=None) -> go.Figure:
    """The 10x10 confusion matrix (rows true, columns predicted) with clickable cells.

    Streamlit's on_select returns no point for a heatmap (streamlit #8760), so an invisible
    square-marker scatter lies over the cells: a click selects its (true, predicted) point.
    Both axes are categorical with fixed ranges so the markers stay on their cells.
    `selected` (true, predicted) is outlined. normalise: show each row as % of its true digit.
    classes: the 10 class names for the axes (None: the digits).
    """
    cm = np.asarray(confusion, dtype=np.int64)
    labels = list(classes) if classes is not None else [str(d) for d in range(10)]
    what = "digit" if classes is None or list(classes) == [str(d) for d in range(10)] else "class"
    row = cm.sum(axis=1, keepdims=True)
    pct = np.divide(100.0 * cm, row, out=np.zeros(cm.shape), where=row > 0)
    z = pct if normalise else cm
    # Colour by log counts: the diagonal (~1,000) would otherwise wash out every error.
    colour = pct if normalise else np.log10(1 + cm)
    text = [[f"{v:.1f}" if normalise else f"{v:,}" for v in r] for r in z]
    fig = go.Figure(go.Heatmap(
        z=colour, x=labels, y=labels, text=text, texttemplate="%{text}", colorscale="Blues",
        showscale=False, hoverinfo="skip", xgap=1, ygap=1))
    tt, pp = np.meshgrid(range(10), range(10), indexing="ij")
    fig.add_trace(go.Scatter(
        x=[labels[p] for p in pp.ravel()], y=[labels[t] for t in tt.ravel()], mode="markers",
        marker=dict(symbol="square", size=40, color="rgba(0,0,0,0)"),
        customdata=np.stack([tt.ravel(), pp.ravel(), cm.ravel()], axis=1),
        hovertemplate="true %{y}, predicted %{x}: %{customdata[2]:,} images<extra></extra>",
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
        showlegend=False, name="cells"))
    if selected is not None:
        t, p = selected
        fig.add_shape(type="rect", xref="x", yref="y", x0=p - 0.5, x1=p + 0.5, y0=t - 0.5,
                      y1=t + 0.5, line=dict(color="#d62728", width=3))
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=labels,
                     range=[-0.5, 9.5], fixedrange=True, title_text=f"predicted {what}", side="top")
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=labels,
                     range=[9.5, -0.5], fixedrange=True, title_text=f"true {what}")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), clickmode="event+select",
                      dragmode=False, plot_bgcolor="white")
    return fig


def blank_figure() -> go.Figure:
    """An empty, tiny figure (ui.views.preload_charts draws it hidden)."""
    return go.Figure(layout=dict(height=10, width=10, margin=dict(l=0, r=0, t=0, b=0)))


def probability_figure(probs, height: int = 260, classes=None) -> go.Figure:
    """Bars of the 10 class probabilities (%), the most likely one highlighted; classes: the
    10 names (None: the digits)."""
    probs = np.asarray(probs, dtype=np.float64)
    best = int(probs.argmax())
    names = list(classes) if classes is not None else [str(d) for d in range(10)]
    what = "digit" if names == [str(d) for d in range(10)] else "class"
    fig = go.Figure(go.Bar(
        x=names, y=100 * probs,
        marker_color=["#d62728" if d == best else "#9ecae1" for d in range(10)],
        text=[f"{100 * p:.0f}%" if p >= 0.01 else "" for p in probs], textposition="outside",
        hovertemplate=what + " %{x}: %{y:.2f}%<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10),
                      title=dict(text=f"Probability of each {what}", x=0, xanchor="left"))
    fig.update_xaxes(type="category", title_text=what, fixedrange=True)
    fig.update_yaxes(range=[0, 115], title_text="%", fixedrange=True)
    return fig
