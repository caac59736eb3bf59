"""Data: samples per digit and source; browse a digit; upload your own digits."""

import streamlit as st

from mnistnet.store import SOURCES
from mnistnet.uploads import UploadError, import_uploads
from ui import db, state, views

views.page("data", "Data")
st.title("Data")
state.data()  # MNIST is imported into the store on first use
counts = db.store().sample_counts()
table = [{"source": src, **{str(d): counts.get((src, d), 0) for d in range(10)},
          "total": sum(counts.get((src, d), 0) for d in range(10))} for src in SOURCES]
st.caption("Samples in the store, per digit and where they came from: MNIST (imported once from the "
           "verified files), your uploads, and drawings you corrected on the Draw page.")
st.dataframe(table, hide_index=True, width="stretch")

st.subheader("Browse")
c1, c2 = st.columns(2)
digit = c1.selectbox("Digit", list(range(10)), key="data.digit")
source = c2.selectbox("Source", list(SOURCES), key="data.source")
split = db.store().load_split("mnist" if source == "mnist" else "user", source=source, label=digit, limit=40)
if len(split) == 0:
    st.info(f"No {source} samples of the digit {digit} yet.")
else:
    cols = st.columns(10)
    for i, img in enumerate(split.images):
        cols[i % 10].image(views.digit_image(img, 2), width="stretch")
    st.caption(f"The first {len(split)} of {counts.get((source, digit), 0):,}.")

st.subheader("Upload your own digits")
st.caption("PNG or JPEG images, several at once, each with its digit; or a .zip with one folder per digit "
           "(0/, 1/, ...). Each image is prepared like a drawing: cropped, scaled to 20 px and centred.")
files = st.file_uploader("Images or a .zip", type=["png", "jpg", "jpeg", "zip"], accept_multiple_files=True,
                         key="data.files")
if files:
    labels = {}
    images = [f for f in files if not f.name.lower().endswith(".zip")]
    if images:
        cols = st.columns(min(len(images), 6))
        for i, f in enumerate(images):
            with cols[i % len(cols)]:
                st.image(f.getvalue(), width=84)
                labels[f.file_id] = st.selectbox("Digit", list(range(10)), index=None, key=f"data.label.{f.file_id}",
                                                 placeholder="which digit?")
    if st.button("Add to the store", type="primary", icon=":material/upload:", key="data.add"):
        try:
            ids = import_uploads(db.store(), [(f.name, f.getvalue(), labels.get(f.file_id)) for f in files])
        except UploadError as e:
            st.error(f"Nothing was stored: {e}")
        else:
            st.success(f"Stored {len(ids)} digit(s). They take part in \"Fine-tune on my digits\" on the Draw page.")
