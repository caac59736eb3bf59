"""Analyze: the test-set confusion matrix (clickable) -> gallery; per-digit table; confused pairs."""

import numpy as np
import streamlit as st

from mnistnet import metrics
from ui import figcache, session, views
from ui.plain import md

GALLERY_MAX = 60

views.page("analyze", "Analyze")
st.title("Where does the network err?")
entry = views.require_model()
if entry is None:
    st.stop()

summary = session.test_summary(entry)
cm = summary["confusion"]
probs = session.test_probabilities(entry)
test = session.test_data(entry).test
pred = probs.argmax(axis=1)
classes = entry.classes
digits = entry.dataset == "mnist"
what = "digit" if digits else "class"
names = None if digits else classes  # the figures' labels: the digits themselves for MNIST

st.metric("Test accuracy", views.accuracy_text(summary["correct"], summary["total"]))
st.caption(f"On the {summary['total']:,} test images of {entry.dataset_title}, which this model reads.")


def on_cell_click():
    points = st.session_state["analyze.cm"].selection.points
    if points:  # a click elsewhere deselects; keep the cell shown until another is clicked
        views.select_cell(classes.index(str(points[0]["y"])), classes.index(str(points[0]["x"])))


selected = views.selected_cell()
left, right = st.columns(2, gap="large")
with left:
    normalise = st.toggle(f"Row-normalised (% of each true {what})", key="analyze.normalise")
    st.plotly_chart(figcache.confusion_figure(entry.key, cm, normalise, selected, names), key="analyze.cm",
                    on_select=on_cell_click, selection_mode="points", width="stretch",
                    config={"displayModeBar": False})
    st.caption(f"Rows: the true {what}. Columns: what the network said. Click a cell to see its images.")

with right:
    if selected is None:
        st.info("Click a cell of the confusion matrix (or a pair below) to see its test images.")
    else:
        t, p = selected
        idx = np.flatnonzero((test.labels == t) & (pred == p))
        head = (f"True {md(classes[t])}, predicted {md(classes[p])}: "
                f"{len(idx):,} test image{'s' if len(idx) != 1 else ''}")
        st.subheader(head, anchor="gallery")
        if len(idx) > GALLERY_MAX:
            st.caption(f"Showing the first {GALLERY_MAX} of {len(idx):,}.")
        views.gallery(test.images, probs, idx[:GALLERY_MAX], classes=names)
        st.button("Clear selection", on_click=views.select_cell, args=(None, None))

st.subheader(f"Per {what}")
left, right = st.columns([3, 2], gap="large")
with left:
    table = metrics.per_digit_table(cm)
    if not digits:  # the label, then its name
        table = [{"digit": r["digit"], "class": name, **r} for r, name in zip(table, classes)]
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "digit": st.column_config.NumberColumn("label" if not digits else "digit", width="small"),
        "support": st.column_config.NumberColumn("test images", format="localized"),
        "errors": st.column_config.NumberColumn("errors"),
        "precision": st.column_config.NumberColumn("precision", format="percent"),
        "recall": st.column_config.NumberColumn("recall", format="percent")})
with right:
    st.markdown("**Most confused pairs** (true → predicted)")
    for t, p, n in metrics.most_confused(cm, 8):
        st.button(f"{md(classes[t])} → {md(classes[p])}: {n} images", key=f"pair.{t}.{p}",
                  on_click=views.select_cell, args=(t, p))
