"""Figures every visitor of the same stored thing shares, built once per server process: the
confusion matrix of a stored model, the Train page's charts of a run at a given epoch.

A class looks at one or two models and a few runs: without this each visitor's page run
rebuilds the same Plotly figures (5-10 ms each). The figures are shared objects, serialised by
Streamlit on each use and never changed after they are built. Keys say everything a figure
shows (a model's id and content; a run's id, status and counts), so a cached figure is never
stale.

Imports numpy, streamlit and ui.figures only.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui import figures

KEPT = 64  # figures per kind: a few models and runs, each with a handful of variants


@st.cache_resource(max_entries=KEPT, show_spinner=False)
def _confusion(model_key: tuple[int, str], normalise: bool, selected: tuple[int, int] | None,
               classes: tuple[str, ...] | None, _confusion: np.ndarray):
    return figures.confusion_figure(_confusion, normalise, selected, classes=classes)


def confusion_figure(model_key: tuple[int, str] | None, confusion: np.ndarray, normalise: bool,
                     selected: tuple[int, int] | None, classes: tuple[str, ...] | None = None):
    """figures.confusion_figure of the (10, 10) int confusion matrix of the stored model
    `model_key` (id, content SHA-256), shared; built afresh when model_key is None (a model
    that is not stored). classes: the axes' 10 names (None: the digits)."""
    if model_key is None:
        return figures.confusion_figure(confusion, normalise, selected, classes=classes)
    return _confusion(model_key, normalise, selected, classes, confusion)


@st.cache_resource(max_entries=KEPT, show_spinner=False)
def epoch_figures(key: tuple, _epochs: list[dict], _batch_losses, _n_train: int, _extent: int | None) -> list:
    """[accuracy, test errors per digit, training errors per digit] of a run, for `key`
    (run id, start time, epochs done, status): every visitor of the run shares them."""
    args = (_batch_losses, _n_train, _extent)
    return [figures.accuracy_figure(_epochs, *args),
            figures.digit_errors_figure(_epochs, "test", *args),
            figures.digit_errors_figure(_epochs, "train", *args)]


@st.cache_resource(max_entries=KEPT, show_spinner=False)
def loss_figure(key: tuple, _epochs: list[dict], _batch_losses, _n_train: int, _extent: int | None):
    """The loss figure of a run for `key` (run id, start time, losses recorded, epochs done, status)."""
    return figures.loss_figure(_epochs, _batch_losses, _n_train, _extent)
