"""The Draw page's loop: keep a drawing with the right digit; fine-tune on the user's digits.

Imports streamlit, mnistnet and ui.state/ui.db. The fine-tuned model is a copy: the current
model may be the server's shared default, which no session may change.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from mnistnet.modelfile import load_model, model_bytes
from mnistnet.runs import fine_tune, user_samples
from ui import db, state

RESULT_KEY = "draw.finetune"
KEPT_KEY = "draw.kept"  # the message after "Correct it", shown once on the rerun it causes


def keep(digit: np.ndarray, probs: np.ndarray, label: int, entry: state.ModelEntry) -> None:
    """Store the drawing (as the network saw it) with the user's digit: in drawings, and as a
    sample of source 'drawing' that fine-tuning learns from."""
    store = db.store()
    store.add_drawing(digit, probs, entry.model_id, label)
    store.add_samples(digit[None], [label], "drawing")


def correction_row(digit: np.ndarray, probs: np.ndarray, entry: state.ModelEntry) -> None:
    best = int(probs.argmax())
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    label = c1.selectbox("Wrong? It is a ...", list(range(10)), index=best, key="draw.label")
    if c2.button("Correct it" if label != best else "Keep it", key="draw.correct", width="stretch",
                 icon=":material/check:"):
        keep(digit, probs, int(label), entry)
        st.session_state[KEPT_KEY] = f"Kept as a {label}: it joins your digits for fine-tuning."
        st.rerun()  # the whole page: the fine-tuning section below counts the new digit
    if msg := st.session_state.pop(KEPT_KEY, None):
        st.success(msg)


def fine_tune_section(entry: state.ModelEntry) -> None:
    user = user_samples(db.store())
    st.subheader("Fine-tune on my digits")
    if len(user) == 0:
        st.caption("Keep or correct a few drawings above (or upload digits on the Data page), then "
                   "fine-tune the network on them mixed with MNIST.")
        return
    per_digit = np.bincount(user.labels, minlength=10)
    st.caption(f"You have {len(user)} labelled digits of your own ("
               + ", ".join(f"{d}: {n}" for d, n in enumerate(per_digit) if n) + "). Fine-tuning trains a copy "
               "of the current model for one epoch on MNIST with your digits mixed in.")
    if st.button("Fine-tune on my digits", icon=":material/tune:", key="draw.finetune.go"):
        model = load_model(model_bytes(entry.model))  # a copy
        bar = st.progress(0.0, text="Fine-tuning...")

        def progress(p):
            bar.progress(min(p.samples_seen / p.total_samples, 1.0),
                         text=f"Fine-tuning: {p.samples_seen:,} / {p.total_samples:,} images")
        result = fine_tune(db.store(), model, state.data(), user, on_progress=progress)
        bar.empty()
        state.set_current(model, f"fine-tuned on your {len(user)} digits (run #{result.run.run_id})",
                          result.run.model_id)
        st.session_state[RESULT_KEY] = result
    result = st.session_state.get(RESULT_KEY)
    if result is not None:
        ub, ua, tb, ta = result.user_before, result.user_after, result.test_before, result.test_after
        c1, c2 = st.columns(2)
        c1.metric("Your digits", f"{100 * ua['accuracy']:.1f}% ({ua['correct']} / {ua['total']})",
                  delta=f"{100 * (ua['accuracy'] - ub['accuracy']):+.1f} points (was {ub['correct']} / {ub['total']})")
        c2.metric("MNIST test", f"{100 * ta['accuracy']:.2f}% ({ta['correct']:,} / {ta['total']:,})",
                  delta=f"{100 * (ta['accuracy'] - tb['accuracy']):+.2f} points (was {tb['correct']:,})")
        st.caption("The fine-tuned model is now your current model.")
