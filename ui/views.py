"""Small Streamlit views shared by the pages: page set-up (with the visitor's identity), the
current model's summary, the offer to train the default model, digit images, the gallery, the
Analyze selection in the URL.

Imports streamlit, numpy, Pillow, mnistnet and the ui layers below (nav, identity, session,
jobs, resources).
"""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

from mnistnet import DataError, preset
from mnistnet.modelfile import model_bytes
from mnistnet.presets import DEFAULT_PRESET
from ui import identity, jobs, nav, session
from ui.plain import md

PAGE_KEY = "ui.page"  # the page this session ran last: tells the Draw page its canvas remounted


def page(name: str, title: str) -> str | None:
    """Common set-up of every page: the visitor's identity (the page waits for it on its first
    run), the sidebar; returns the page this session showed before (or None)."""
    nav.configure(title)
    if identity.mount() is None:
        st.caption("Opening your lab...")
        st.stop()  # the browser hands over its key at once, which reruns the page
    previous = st.session_state.get(PAGE_KEY)
    st.session_state[PAGE_KEY] = name
    nav.sidebar()
    with st.sidebar:
        identity.login_button()
    return previous


def data():
    """MNIST for the page, with a progress bar while it is fetched and imported the first
    time; a failure is a sentence and stops the page."""
    if session.data_ready():
        return session.data()
    with st.status("Loading MNIST (fetched and verified on first use)...", expanded=True) as box:
        bar = st.progress(0.0, text="Importing MNIST into the store (once)...")

        def report(name, done, total):
            bar.progress(min(done / total, 1.0) if total else 0.0, text=f"{name}: {done / 1e6:.1f} MB")
        try:
            d = session.data(report)
        except DataError as e:  # it says where to put the four files
            box.update(label="MNIST could not be loaded", state="error")
            st.error(str(e))
            st.stop()
        box.update(label="MNIST ready", state="complete", expanded=False)
    return d


# Chromium without a GPU paints every frame of an animation on the CPU, and on a 2-core machine
# that CPU comes out of a training run or a reply to a stroke. Measured in a run of the seed
# preset: after Start the whole page faded (Streamlit marks elements stale while a script
# runs) for 2 s at a full core; each 1-s poll's gliding progress bar cost 0.10 of a core, 0.05
# without the glide. So on the Train and Draw pages nothing fades or glides.
NO_ANIMATION_CSS = ("<style>.stElementContainer, [data-testid='stStatusWidget'], details, summary, "
                    "[data-testid='stProgress'] * {transition: none !important; "
                    "animation: none !important;}</style>")


# On a phone (Streamlit stacks columns below 640 px) the Draw page keeps the pad and the answer
# on one screen: the stacked columns close up, pen width and Clear share a row, the answer's
# line shrinks.
DRAW_PHONE_CSS = ("<style>@media (max-width: 640px) {"
                  ".st-key-draw-main [data-testid='stHorizontalBlock'] {gap: 0.25rem !important;}"
                  ".st-key-draw-controls [data-testid='stHorizontalBlock'] {flex-wrap: nowrap !important;}"
                  ".st-key-draw-controls [data-testid='stColumn'] {min-width: 0 !important; width: auto !important;}"
                  "#prediction {font-size: 1rem !important;}"
                  "#predicted-digit, #runner-up {font-size: 2.5rem !important; line-height: 1 !important;}}</style>")


def draw_phone_layout() -> None:
    """The Draw page's layout on a phone (DRAW_PHONE_CSS); call on every run of the page."""
    st.html(DRAW_PHONE_CSS)


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
    from ui import figures  # here: Plotly loads only on the pages that draw charts (cold start)

    with hidden("plotly-preload"):
        st.plotly_chart(fig if fig is not None else figures.blank_figure(), key="plotly.preload",
                        config={"staticPlot": True})
        st.progress(0.0)  # the progress bar's code too: a queued run's place shows at once


# Streamlit sends a Pillow image as JPEG at quality 100 unless told otherwise: a digit's square
# pixels come out blurred at several times the bytes (the Data page's 40 digits: 78 KB as JPEG,
# 10 KB as PNG). Every digit image goes out with output_format="PNG".
def digit_image(img28: np.ndarray, scale: int = 4) -> Image.Image:
    """(28, 28) uint8 -> a Pillow image `scale` times larger with square (nearest) pixels."""
    im = Image.fromarray(np.asarray(img28, dtype=np.uint8), mode="L")
    return im.resize((28 * scale, 28 * scale), Image.NEAREST)


def digit_grid(images: np.ndarray, per_row: int = 10, scale: int = 2, gap: int = 2) -> Image.Image:
    """(n, 28, 28) uint8 -> one Pillow image: the digits `per_row` to a row, each `scale` times
    larger (square pixels), `gap` white pixels apart. One image is one PNG to encode and fetch
    (a 40-digit grid: about 10 KB) where 40 were 40."""
    images = np.asarray(images, dtype=np.uint8)
    n, side = len(images), 28 * scale
    rows = -(-n // per_row)
    out = np.full((rows * (side + gap) - gap, min(n, per_row) * (side + gap) - gap), 255, np.uint8)
    big = images.repeat(scale, axis=1).repeat(scale, axis=2)
    for k in range(n):
        r, c = divmod(k, per_row)
        out[r * (side + gap):r * (side + gap) + side, c * (side + gap):c * (side + gap) + side] = big[k]
    return Image.fromarray(out, mode="L")


def accuracy_text(correct: int, total: int) -> str:
    return f"{100 * correct / max(total, 1):.2f}% ({correct:,} / {total:,})"


def model_summary(entry: session.ModelEntry) -> None:
    """Layer sizes, test accuracy with exact counts and where the model came from."""
    model = entry.model
    hist = model.history
    last = hist.last("test") if hist is not None and hist.epochs else None
    if last is not None and last["total"] == len(data().test.labels):
        correct, total = last["correct"], last["total"]
    else:  # no history (e.g. injected) or measured on other data: measure now
        s = session.test_summary(entry)
        correct, total = s["correct"], s["total"]
    c1, c2 = st.columns(2)
    c1.metric("Layer sizes", "-".join(str(s) for s in model.layer_sizes))
    c2.metric("Test accuracy", f"{100 * correct / max(total, 1):.2f}%",
              delta=f"{correct:,} / {total:,} right", delta_color="off", delta_arrow="off")
    st.caption(f"Where it came from: {md(entry.source)}.")  # it may hold a run's or a file's name


def require_model() -> session.ModelEntry | None:
    """The current model, or None after offering (or following) the training of the lab's
    default model, which is trained once and shared by everyone."""
    entry = session.current()
    if entry is not None:
        return entry
    run = session.default_run()
    if run is not None and run["status"] in jobs.ACTIVE:
        run_progress(run["id"], "The default model is queued ({ahead} run(s) ahead)...", _default_text)
        return None
    data()  # the store gets MNIST before anyone trains on it
    hidden, config = preset(DEFAULT_PRESET)
    sizes = "-".join(str(n) for n in (784, *hidden, 10))
    if run is not None and run["status"] != "finished":
        st.warning(f"The last training of the default model {run['status']}"
                   + (f": {md(run['error'])}." if run["error"] else ".") + " Try again:")
    st.info(f"There is no model yet. Train the default model ({sizes}, {config.epochs} epochs on MNIST "
            "digits turned, slanted, thickened and thinned the way people draw): it takes about ten "
            "seconds and is then shared by everyone using this lab. Or design your own on the Train page.")
    if st.button("Train the default model", type="primary", key="train_default"):
        try:
            jobs.start_default()
        except jobs.JobError as e:
            st.error(str(e))
            return None
        st.rerun()
    return None


@st.fragment(run_every=1.0)
def run_progress(run_id: int, queued: str, running) -> None:
    """A queued or running run's progress bar, read from the store every second; the whole page
    reruns when the run ends. queued: the text while it waits, with {ahead} for the runs ahead;
    running: Progress or None (none reported yet) -> the text while it trains."""
    snap = jobs.snapshot(run_id)
    if snap is None or not snap.running:
        st.rerun(scope="app")
    if snap.status == "queued":
        st.progress(0.0, text=queued.format(ahead=snap.ahead))
    else:
        st.progress(snap.fraction, text=running(snap.progress))


def _default_text(p) -> str:
    return "Training the default model" + (
        f": epoch {p.epoch}/{p.epochs}, {p.samples_per_s:,.0f} samples/s" if p else "...")


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


def gallery(images: np.ndarray, probs: np.ndarray, indices, per_row: int = 5, classes=None) -> None:
    """Test images `indices` in a grid, each captioned with its index and top-2 probabilities.

    images: (n, 28, 28) uint8; probs: (n, 10) float32; classes: the 10 names (None: digits).
    """
    names = list(classes) if classes is not None else [str(d) for d in range(10)]
    indices = list(indices)
    for start in range(0, len(indices), per_row):
        cols = st.columns(per_row)
        for col, i in zip(cols, indices[start:start + per_row]):
            top = np.argsort(probs[i])[::-1][:2]
            # Captions are Markdown: two spaces and a newline break the line.
            col.image(digit_image(images[i], 3), width="stretch", output_format="PNG",
                      caption=f"#{i}  \n" + "  \n".join(f"{md(names[d])}: {100 * probs[i, d]:.0f}%" for d in top))


def model_download(entry: session.ModelEntry | None) -> None:
    """Download the current model as a .npz file."""
    if entry is not None:
        model = entry.model
        st.download_button("Download this model (.npz)", data=lambda: model_bytes(model),
                           file_name="mnistnet-model.npz", mime="application/octet-stream",
                           icon=":material/download:")
