"""The Draw page's loop: keep a drawing with the right digit; fine-tune on the visitor's digits.

Imports streamlit, numpy, mnistnet and the ui layers below. Kept digits belong to the visitor;
fine-tuning trains a copy of their current model on the training cluster (a run like any
other) and its model becomes their current one.
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from mnistnet.runs import measure, user_samples
from ui import jobs, resources, session, views

KEPT_KEY = "draw.kept"  # the message after "Keep it", shown once on the rerun it causes
BEFORE_KEY = "draw.finetune.before"  # {run id: (metrics on the digits, metrics on MNIST test) before}


def _digest(digit: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(digit, dtype=np.uint8).tobytes()).hexdigest()[:16]


def keep(digit: np.ndarray, probs: np.ndarray, label: int, entry: session.ModelEntry) -> None:
    """Store the drawing (as the network saw it) with the visitor's digit: in drawings, and as
    a sample of source 'drawing' that fine-tuning learns from."""
    store, owner = resources.store(), session.owner()
    store.add_drawing(digit, probs, entry.model_id, owner, label)
    store.add_samples(digit[None], [label], "drawing", owner=owner)


def correction_row(digit: np.ndarray, probs: np.ndarray, entry: session.ModelEntry) -> None:
    """'Wrong? It is a ...' following the current reading, and Keep it / Correct it, once per drawing."""
    best = int(probs.argmax())
    digest = _digest(digit)
    kept = st.session_state.setdefault("draw.kept_digests", {})
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    # Keyed by the drawing: a changed drawing gets a new box, which starts at the new reading.
    label = c1.selectbox("Wrong? It is a ...", list(range(10)), index=best, key=f"draw.label.{digest}")
    if digest in kept:
        c2.button(f"Kept as a {kept[digest]}", key="draw.correct", width="stretch", disabled=True,
                  icon=":material/check:")
    elif c2.button("Correct it" if label != best else "Keep it", key="draw.correct", width="stretch",
                   icon=":material/check:"):
        keep(digit, probs, int(label), entry)
        kept[digest] = int(label)
        st.session_state[KEPT_KEY] = f"Kept as a {label}: it joins your digits for fine-tuning."
        st.rerun()  # the whole page: the fine-tuning section below counts the new digit
    if msg := st.session_state.pop(KEPT_KEY, None):
        st.success(msg)


def fine_tune_section(entry: session.ModelEntry) -> None:
    owner = session.owner()
    mine = user_samples(resources.store(), owner)
    st.subheader("Fine-tune on my digits")
    active = jobs.my_active(owner, ("finetune",))
    if active:
        views.run_progress(active[0]["id"], "Fine-tuning is queued ({ahead} run(s) ahead of you)...",
                           _fine_tune_text)
        return
    if len(mine) == 0:
        st.caption("Keep or correct a few drawings above (or upload digits on the Data page), then "
                   "fine-tune the network on them mixed with MNIST.")
        result(owner)
        return
    per_digit = np.bincount(mine.labels, minlength=10)
    others = len(user_samples(resources.store(), owner, everyone=True)) - len(mine)
    st.caption(f"You have {len(mine)} labelled digits of your own ("
               + ", ".join(f"{d}: {n}" for d, n in enumerate(per_digit) if n) + "). Fine-tuning trains a copy "
               "of your current model for one epoch on MNIST with your digits mixed in.")
    everyone = st.checkbox(f"Also use everyone's digits ({others} kept by other visitors of this lab)",
                           key="draw.finetune.everyone", disabled=others == 0)
    if st.button("Fine-tune on my digits", icon=":material/tune:", key="draw.finetune.go"):
        digits = user_samples(resources.store(), owner, everyone)
        before = (measure(entry.model, digits), measure(entry.model, session.data().test))
        try:
            run_id = jobs.start_fine_tune(entry, everyone)
        except jobs.JobError as e:
            st.error(str(e))
            return
        st.session_state.setdefault(BEFORE_KEY, {})[run_id] = (before, everyone)
        st.rerun()
    result(owner)


def _fine_tune_text(p) -> str:
    return f"Fine-tuning: {p.samples_seen:,} / {p.total_samples:,} images" if p else "Fine-tuning..."


def result(owner: str) -> None:
    """Before and after of the visitor's last fine-tuning (measured in this session)."""
    last = jobs.latest(owner, ("finetune",))
    before = st.session_state.get(BEFORE_KEY, {}).get(last["id"]) if last else None
    if last is None or before is None or last["model_id"] is None:
        return
    (ub, tb), everyone = before
    model = resources.store().load_model(last["model_id"])
    digits = user_samples(resources.store(), owner, everyone)
    ua, ta = measure(model, digits), measure(model, session.data().test)
    c1, c2 = st.columns(2)
    c1.metric("Your digits" + (" and everyone's" if everyone else ""),
              f"{100 * ua['accuracy']:.1f}% ({ua['correct']} / {ua['total']})",
              delta=f"{100 * (ua['accuracy'] - ub['accuracy']):+.1f} points (was {ub['correct']} / {ub['total']})")
    c2.metric("MNIST test", f"{100 * ta['accuracy']:.2f}% ({ta['correct']:,} / {ta['total']:,})",
              delta=f"{100 * (ta['accuracy'] - tb['accuracy']):+.2f} points (was {tb['correct']:,})")
    row = resources.store().run(last["id"])
    if row and row["spec"].get("note"):
        st.caption(row["spec"]["note"].replace("This run's", "The fine-tuned"))
