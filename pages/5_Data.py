"""Data: samples per digit and source; browse a digit; upload your own digits."""

import streamlit as st

from mnistnet.store import SOURCES
from mnistnet.uploads import MAX_FILE, MAX_PIXELS, UploadError, add_prepared
from ui import resources, session, uploadview, views
from ui.plain import md

views.page("data", "Data")
st.title("Data")
views.data()  # MNIST is imported into the store on first use
store, owner = resources.store(), session.owner()
counts = store.sample_counts(owner)
everyone = store.sample_counts()
table = [{"source": src if src == "mnist" else f"{src} (yours)", **{str(d): counts.get((src, d), 0) for d in range(10)},
          "total": sum(counts.get((src, d), 0) for d in range(10))} for src in SOURCES]
theirs = sum(everyone.get((s, d), 0) - counts.get((s, d), 0) for s in SOURCES[1:] for d in range(10))
st.caption("Samples in the store, per digit and where they came from: MNIST (imported once from the "
           f"verified files), your uploads, and drawings you kept on the Draw page. Other visitors have kept "
           f"{theirs:,} digit{'' if theirs == 1 else 's'} of their own.")
if msg := st.session_state.pop("data.stored", None):
    st.success(msg)
st.dataframe(table, hide_index=True, width="stretch")

st.subheader("Browse")
c1, c2 = st.columns(2)
digit = c1.selectbox("Digit", list(range(10)), key="data.digit")
source = c2.selectbox("Source", list(SOURCES), key="data.source",
                      format_func=lambda s: s if s == "mnist" else f"{s} (yours)")
split = store.load_split("mnist" if source == "mnist" else "user", source=source, label=digit, limit=40,
                         owner=None if source == "mnist" else owner)
if len(split) == 0:
    st.info(f"No {source} samples of the digit {digit} yet.")
else:
    st.image(views.digit_grid(split.images, per_row=10, scale=2), width="stretch", output_format="PNG")
    st.caption(f"The first {len(split)} of {counts.get((source, digit), 0):,}.")

st.subheader("Upload your own digits")
st.caption("PNG or JPEG images, several at once, each with its digit; or a .zip with one folder per digit "
           f"(0/, 1/, ...). Up to {MAX_FILE // 2**20} MB a file and {MAX_PIXELS // 10**6} megapixels of images "
           "in all. Each image is prepared like a drawing: cropped, "
           "scaled to 20 px and centred; what you see below is what will be stored.")
files = st.file_uploader("Images or a .zip", type=["png", "jpg", "jpeg", "zip"], accept_multiple_files=True,
                         key=f"data.files.{st.session_state.get('data.files.n', 0)}",  # a new one after storing
                         max_upload_size=MAX_FILE // 2**20)
if files:
    result = uploadview.prepared(files)  # decoded on the first run that sees these files, then kept
    if isinstance(result, str):  # too many pixels: nothing was decoded
        st.error(md(result))
        st.stop()
    labels = uploadview.previews(files, result)
    bad = [p.error for p in result if p.error is not None]
    for msg in bad:
        st.error(md(msg))
    if st.button("Add to the store", type="primary", icon=":material/upload:", key="data.add", disabled=bool(bad)):
        try:
            ids = add_prepared(store, result, [labels.get(f.file_id) for f in files], owner)
        except UploadError as e:
            st.error(f"Nothing was stored: {md(e)}")
        else:
            st.session_state["data.stored"] = (f"Stored {len(ids)} digit(s). They take part in \"Fine-tune on "
                                               "my digits\" on the Draw page.")
            st.session_state["data.files.n"] = st.session_state.get("data.files.n", 0) + 1
            uploadview.forget()
            st.rerun()  # the counts above include them
    if bad:
        st.caption("Remove the files marked above (the × next to each) to add the others.")
