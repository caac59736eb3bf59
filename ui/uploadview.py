"""The Data page's upload: the files in the uploader prepared once (sized from their headers,
decoded, 28x28) and kept in the session under their content hash, so that a rerun (a label
chosen, a digit browsed) decodes nothing; and their previews, drawn from what was prepared.

Imports streamlit, mnistnet and the ui layers below (views, plain).
"""

from __future__ import annotations

import hashlib

import streamlit as st

from mnistnet.uploads import Prepared, TooManyPixels, prepare_uploads
from ui import views
from ui.plain import md

KEY = "data.prepared"  # (content hash, [Prepared] or the sentence refusing the upload): the last upload only
PREVIEW_ZIP = 10  # a zip's first digits shown


def content_hash(files) -> str:
    """The uploader's files (names and bytes, in order) -> a hex digest."""
    h = hashlib.sha256()
    for f in files:
        h.update(hashlib.sha256(f.name.encode()).digest() + hashlib.sha256(f.getbuffer()).digest())
    return h.hexdigest()


def prepared(files) -> list[Prepared] | str:
    """One Prepared per file, or the sentence refusing the whole upload (too many pixels):
    prepared on the first run that sees these files, then taken from the session."""
    key = content_hash(files)
    kept = st.session_state.get(KEY)
    if kept is None or kept[0] != key:
        try:
            result = prepare_uploads([(f.name, f.getvalue()) for f in files])
        except TooManyPixels as e:
            result = str(e)
        kept = st.session_state[KEY] = (key, result)
    return kept[1]


def forget() -> None:
    st.session_state.pop(KEY, None)


def previews(files, result: list[Prepared]) -> dict[str, int | None]:
    """Each image as it would be stored, with a box for its digit; each zip's count and first
    digits. -> {file_id: the digit chosen, or None} for the images."""
    labels = {}
    images = [(f, p) for f, p in zip(files, result) if p.labels is None]
    if images:
        cols = st.columns(min(len(images), 6))
        for i, (f, p) in enumerate(images):
            with cols[i % len(cols)]:
                if p.error is not None:
                    st.caption(f"{md(f.name)}: not usable")
                    continue
                st.image(views.digit_image(p.images[0], 3), width=84, output_format="PNG")
                labels[f.file_id] = st.selectbox("Digit", list(range(10)), index=None, key=f"data.label.{f.file_id}",
                                                 placeholder="which digit?")
    for f, p in zip(files, result):
        if p.labels is not None:
            st.caption(f"{md(f.name)}: {len(p.labels):,} digits, labelled by their folders; the first "
                       f"{min(len(p.labels), PREVIEW_ZIP)}:")
            cols = st.columns(PREVIEW_ZIP)
            for col, img, d in zip(cols, p.images[:PREVIEW_ZIP], p.labels[:PREVIEW_ZIP]):
                col.image(views.digit_image(img, 2), caption=str(d), width="stretch", output_format="PNG")
    return labels
