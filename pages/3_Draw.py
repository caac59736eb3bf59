"""Draw: canvas -> mnistnet.preprocess_drawing -> predict_proba; bars and the 28x28 view."""

import numpy as np
import streamlit as st

from mnistnet import preprocess_drawing
from ui import canvas, figures, mydigits, views

previous = views.page("draw", "Draw")
st.title("Draw a digit")
views.no_animation()
entry = views.require_model()
if entry is None:
    st.stop()
if previous != "draw":  # the canvas mounts afresh: it gets the kept drawing back
    canvas.remount()
st.caption("White pen on black, like MNIST. The network reads it after every stroke.")


@st.fragment  # a stroke reruns only this, not the whole page: a quicker answer
def draw_and_read(entry):
    left, right = st.columns([1, 1], gap="large")
    with left:
        st.space("small")  # the canvas's own toolbar floats above it: room so it covers nothing
        image = canvas.draw(st.session_state.get("draw.pen", 20))
        controls = st.container()  # filled after the answer: the answer reaches the page first
    digit = preprocess_drawing(image) if image is not None else None
    with right:
        if digit is None:
            st.info("Draw a digit from 0 to 9 on the black square: it is read as soon as "
                    "you lift the pen.")
            preload_answer()
        else:
            read(entry, digit)
    with controls:
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        c1.slider("Pen width", 8, 40, 20, key="draw.pen")
        c2.button("Clear", on_click=canvas.clear, icon=":material/delete:", width="stretch")


def preload_answer():
    """The answer's kinds of element, hidden: the browser loads their code (about 0.5 s of
    CPU) now, not after the first stroke; the server warms its Plotly bars."""
    views.preload_charts(figures.probability_figure(np.full(10, 0.1, dtype=np.float32)))
    with views.hidden("draw-preload"):
        st.markdown("<span>0</span>", unsafe_allow_html=True)
        st.image(views.digit_image(np.zeros((28, 28), np.uint8), 1))
        st.selectbox("preload", [0], key="draw.preload", label_visibility="collapsed")


def read(entry, digit):
    """The network's answer for `digit` ((28, 28) uint8): digit, confidence, bars, its view."""
    probs = entry.model.predict_proba(digit[None])[0]
    best = int(probs.argmax())
    st.markdown(f"<div id='prediction' style='font-size:1.2rem'>The network reads "
                f"<span id='predicted-digit' style='font-size:4rem;font-weight:700'>{best}</span>"
                f" with {100 * probs[best]:.1f}% confidence</div>", unsafe_allow_html=True)
    st.plotly_chart(figures.probability_figure(probs), width="stretch", config={"displayModeBar": False})
    st.image(views.digit_image(digit, 5), caption="What the network sees: 28 x 28 pixels")
    mydigits.correction_row(digit, probs, entry)


draw_and_read(entry)
mydigits.fine_tune_section(entry)
