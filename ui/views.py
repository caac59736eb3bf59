"""Small Streamlit views shared by the pages: page set-up, the current model's summary, the
offer to train the default model, digit images, the gallery, the Analyze selection in the URL.

Imports streamlit, numpy, Pillow, mnistnet and ui.state.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

from mnistnet import load_model, preset
from ui import nav, state

PAGE_KEY = "ui.page"  # the page this session ran last: tells the Draw page its canvas remounted


def page(name: str, title: str) -> str | None:
    """Common set-up of every page; returns the page this session showed before (or None)."""
    nav.configure(title)
    previous = st.session_state.get(PAGE_KEY)
    st.session_state[PAGE_KEY] = name
    nav.sidebar()
    from ui import db  # a shared run link (?run=ID) gives this session that run's model, on any page
    if msg := db.adopt_run_from_url():
        st.error(msg)
    return previous


# Chromium without a GPU paints every frame of an animation on the CPU, and on a 2-core machine
# that CPU comes out of a training run or a reply to a stroke. Measured in a run of the seed
# preset: after Start the whole page faded (Streamlit marks elements stale while a script
# runs) for 2 s at a full core; each 1-s poll's gliding progress bar cost 0.10 of a core, 0.05
# without the glide. So on the Train and Draw pages nothing fades or glides.
NO_ANIMATION_CSS = ("<style>.stElementContainer, [data-testid='stStatusWidget'], details, summary, "
                    "[data-testid='stProgress'] * {transition: none !important; "
                    "animation: none !important;}</style>")


def no_animation() -> None:
    """Call near the top of a page, on every run: its elements switch at once, never fade."""
    st.html(NO_ANIMATION_CSS)


def hidden(key: str):
    """A container that is never displayed (CSS), for elements whose code the browser should
    load before they are needed: `with hidden("x"): st.plotly_chart(...)`."""
    st.html(f"<style>.st-key-{key} {{display: none;}}</style>")
    return st.container(key=key)


def preload_charts(fig=None) -> None:
    """Have the browser load its charting code now, on a hidden chart (`fig`, or a blank one):
    the kind of chart a page is about to show warms up the server's Plotly as well.

    The first chart on a page costs Chromium about a second of CPU to load and start Plotly.
    Paid on page load instead, a training run's first charts do not wait for it (nor take
    that CPU from the training).
    """
    from ui import figures

    with hidden("plotly-preload"):
        st.plotly_chart(fig if fig is not None else figures.blank_figure(), key="plotly.preload",
                        config={"staticPlot": True})


def digit_image(img28: np.ndarray, scale: int = 4) -> Image.Image:
    """(28, 28) uint8 -> a Pillow image `scale` times larger with square (nearest) pixels."""
    im = Image.fromarray(np.asarray(img28, dtype=np.uint8), mode="L")
    return im.resize((28 * scale, 28 * scale), Image.NEAREST)


def accuracy_text(correct: int, total: int) -> str:
    return f"{100 * correct / max(total, 1):.2f}% ({correct:,} / {total:,})"


def model_summary(entry: state.ModelEntry) -> None:
    """Layer sizes, test accuracy with exact counts and where the model came from."""
    model = entry.model
    hist = model.history
    last = hist.last("test") if hist is not None and hist.epochs else None
    if last is not None and last["total"] == len(state.data().test.labels):
        correct, total = last["correct"], last["total"]
    else:  # no history (e.g. injected) or measured on other data: measure now
        s = state.test_summary(entry)
        correct, total = s["correct"], s["total"]
    c1, c2 = st.columns(2)
    c1.metric("Layer sizes", "-".join(str(s) for s in model.layer_sizes))
    c2.metric("Test accuracy", f"{100 * correct / max(total, 1):.2f}%",
              delta=f"{correct:,} / {total:,} right", delta_color="off", delta_arrow="off")
    st.caption(f"Where it came from: {entry.source}.")


def require_model() -> state.ModelEntry | None:
    """The current model, or None after offering a one-click training of the seed preset."""
    entry = state.current()
    if entry is not None:
        return entry
    hidden, config = preset("seed")
    sizes = "-".join(str(n) for n in (784, *hidden, 10))
    st.info(f"There is no model yet. Train the seed preset (the course report's recipe: {sizes}, "
            f"{config.epochs} epochs): it takes a few seconds and is then shared by everyone "
            "using this server. Or design your own on the Train page.")
    if st.button("Train the seed preset", type="primary", key="train_default"):
        state.train_default_model()
        st.rerun()
    return None


def selected_cell() -> tuple[int, int] | None:
    """The Analyze selection (true, predicted) from the URL (?true=4&pred=9), if valid."""
    t, p = st.query_params.get("true"), st.query_params.get("pred")
    if t is None or p is None or not (t.isdigit() and p.isdigit()):
        return None
    t, p = int(t), int(p)
    return (t, p) if t < 10 and p < 10 else None


def select_cell(true: int | None, pred: int | None) -> None:
    if true is None:
        st.query_params.pop("true", None)
        st.query_params.pop("pred", None)
    else:
        st.query_params["true"] = str(true)
        st.query_params["pred"] = str(pred)


def gallery(images: np.ndarray, probs: np.ndarray, indices, per_row: int = 5) -> None:
    """Test images `indices` in a grid, each captioned with its index and top-2 probabilities.

    images: (n, 28, 28) uint8; probs: (n, 10) float32.
    """
    indices = list(indices)
    for start in range(0, len(indices), per_row):
        cols = st.columns(per_row)
        for col, i in zip(cols, indices[start:start + per_row]):
            top = np.argsort(probs[i])[::-1][:2]
            # Captions are Markdown: two spaces and a newline break the line.
            col.image(digit_image(images[i], 3), width="stretch",
                      caption=f"#{i}  \n" + "  \n".join(f"{d}: {100 * probs[i, d]:.0f}%" for d in top))


def model_files(entry: state.ModelEntry | None) -> None:
    """Download the current model as a .npz file; load one as this session's model."""
    from mnistnet.modelfile import model_bytes

    if entry is not None:
        model = entry.model
        st.download_button("Download this model (.npz)", data=lambda: model_bytes(model),
                           file_name="mnistnet-model.npz", mime="application/octet-stream",
                           icon=":material/download:")
    upload = st.file_uploader("Load a model file saved by mnistnet (the app or "
                              "`python -m mnistnet train --out`)", type=["npz"], key="home.upload")
    if upload is not None and st.session_state.get("home.loaded") != upload.file_id:
        try:
            model = load_model(upload.getvalue())
        except ValueError as e:  # load_model says what is wrong with the file
            st.error(str(e))
            return
        st.session_state["home.loaded"] = upload.file_id
        state.set_current(model, f"loaded from the file {upload.name}")
        st.rerun()
