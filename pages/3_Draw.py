"""Draw: canvas -> mnistnet.reading.read_drawing; the answer (or a hint), bars and the 28x28 view."""

import numpy as np
import streamlit as st

from mnistnet.reading import BLANK, TOO_SMALL, UNSURE, read_drawing
from ui import canvas, figures, mydigits, views
from ui.plain import md

previous = views.page("draw", "Draw")
st.title("Draw a digit")
views.no_animation()
views.draw_phone_layout()
entry = views.require_model()
if entry is None:
    st.stop()
if previous != "draw":  # the canvas mounts afresh: it gets the kept drawing back
    canvas.remount()
if entry.dataset == "mnist":
    st.caption("White pen on black, like MNIST. The network reads it after every stroke.")
else:
    st.info(f"This model reads {entry.dataset_title}: {', '.join(entry.classes)}. Draw one as a white "
            "shape on black (a trouser, a bag, a shoe) and see what it makes of it. Your drawings are "
            "kept, and fine-tuning offered, for MNIST models only.")


@st.fragment  # a stroke reruns only this, not the whole page: a quicker answer
def draw_and_read(entry):
    left, right = st.container(key="draw-main").columns([1, 1], gap="large")
    with left:
        st.space("small")  # the canvas's own toolbar floats above it: room so it covers nothing
        image = canvas.draw(st.session_state.get("draw.pen", 20))
        controls = st.container(key="draw-controls")  # filled after the answer: the answer reaches the page first
    reading = read_drawing(image, entry.model)
    with right:
        if reading.kind == BLANK:
            st.info("Draw a digit from 0 to 9 on the black square: it is read as soon as "
                    "you lift the pen.")
            preload_answer()
        elif reading.kind == TOO_SMALL:  # a dot or a tiny scribble: a hint, not a confident guess
            st.warning(reading.message)
            preload_answer()
        else:
            read(entry, reading)
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
        st.image(views.digit_image(np.zeros((28, 28), np.uint8), 1), output_format="PNG")
        st.selectbox("preload", [0], key="draw.preload", label_visibility="collapsed")


def read(entry, reading):
    """The network's answer (a mnistnet.reading.Reading): digit and confidence, or "8 or 3?" with
    both when it is unsure; bars, its 28x28 view."""
    digit, probs = reading.digit, reading.probs
    best, second = reading.top_two
    if entry.dataset != "mnist":  # names, not digits; no keeping a drawing as a digit
        best_name, second_name = md(entry.classes[best]), md(entry.classes[second])
        st.markdown(f"<div id='prediction' style='font-size:1.2rem'>The network reads "
                    f"<span id='predicted-class' style='font-size:2.5rem;font-weight:700'>{best_name}</span>"
                    f" with {100 * probs[best]:.1f}% confidence (then {second_name}, "
                    f"{100 * probs[second]:.1f}%)</div>", unsafe_allow_html=True)
        st.plotly_chart(figures.probability_figure(probs, classes=entry.classes), width="stretch",
                        config={"displayModeBar": False})
        st.image(views.digit_image(digit, 5), caption="What the network sees: 28 x 28 pixels", output_format="PNG")
        return
    big = "font-size:4rem;font-weight:700"
    if reading.kind == UNSURE:
        st.markdown(f"<div id='prediction' style='font-size:1.2rem'>The network is unsure: "
                    f"<span id='predicted-digit' style='{big}'>{best}</span>"
                    f"<span id='runner-up' style='{big}'> or {second}?</span><br>"
                    f"{best} with {100 * probs[best]:.1f}% confidence, {second} with "
                    f"{100 * probs[second]:.1f}%</div>", unsafe_allow_html=True)
    else:
        st.markdown(f"<div id='prediction' style='font-size:1.2rem'>The network reads "
                    f"<span id='predicted-digit' style='{big}'>{best}</span>"
                    f" with {100 * probs[best]:.1f}% confidence</div>", unsafe_allow_html=True)
    st.plotly_chart(figures.probability_figure(probs), width="stretch", config={"displayModeBar": False})
    st.image(views.digit_image(digit, 5), caption="What the network sees: 28 x 28 pixels", output_format="PNG")
    mydigits.correction_row(digit, probs, entry)


draw_and_read(entry)
if entry.dataset == "mnist":
    mydigits.fine_tune_section(entry)
