"""Analyze: the test-set confusion matrix (clickable) -> gallery; per-digit table; confused pairs."""

import numpy as np
import streamlit as st

from mnistnet import metrics
from ui import figcache, session, views

GALLERY_MAX = 60

views.page("analyze", "Analyze")
st.title("Where does the network err?")
entry = views.require_model()
if entry is None:
    st.stop()

summary = session.test_summary(entry)
cm = summary["confusion"]
probs = session.test_probabilities(entry)
test = views.data().test
pred = probs.argmax(axis=1)

st.metric("Test accuracy", views.accuracy_text(summary["correct"], summary["total"]))


def on_cell_click():
    points = st.session_state["analyze.cm"].selection.points
    if points:  # a click elsewhere deselects; keep the cell shown until another is clicked
        views.select_cell(int(points[0]["y"]), int(points[0]["x"]))  # category labels


selected = views.selected_cell()
left, right = st.columns(2, gap="large")
with left:
    normalise = st.toggle("Row-normalised (% of each true digit)", key="analyze.normalise")
    st.plotly_chart(figcache.confusion_figure(entry.key, cm, normalise, selected), key="analyze.cm",
                    on_select=on_cell_click, selection_mode="points", width="stretch",
                    config={"displayModeBar": False})
    st.caption("Rows: the true digit. Columns: what the network said. Click a cell to see its images.")

with right:
    if selected is None:
        st.info("Click a cell of the confusion matrix (or a pair below) to see its test images.")
    else:
        t, p = selected
        idx = np.flatnonzero((test.labels == t) & (pred == p))
        head = f"True {t}, predicted {p}: {len(idx):,} test image{'s' if len(idx) != 1 else ''}"
        st.subheader(head, anchor="gallery")
        if len(idx) > GALLERY_MAX:
            st.caption(f"Showing the first {GALLERY_MAX} of {len(idx):,}.")
        views.gallery(test.images, probs, idx[:GALLERY_MAX])
        st.button("Clear selection", on_click=views.select_cell, args=(None, None))

st.subheader("Per digit")
left, right = st.columns([3, 2], gap="large")
with left:
    st.dataframe(metrics.per_digit_table(cm), hide_index=True, width="stretch", column_config={
        "digit": st.column_config.NumberColumn("digit", width="small"),
        "support": st.column_config.NumberColumn("test images", format="localized"),
        "errors": st.column_config.NumberColumn("errors"),
        "precision": st.column_config.NumberColumn("precision", format="percent"),
        "recall": st.column_config.NumberColumn("recall", format="percent")})
with right:
    st.markdown("**Most confused pairs** (true → predicted)")
    for t, p, n in metrics.most_confused(cm, 8):
        st.button(f"{t} → {p}: {n} images", key=f"pair.{t}.{p}", on_click=views.select_cell,
                  args=(t, p))
