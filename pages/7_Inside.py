"""Inside: draw, and watch the network's layers respond in the browser at every frame."""

import streamlit as st

from ui import inside, views

views.page("inside", "Inside")
st.title("Inside the network")
entry = views.require_model()
if entry is None:
    st.stop()
if inside.has_layers(entry):
    st.caption("Draw with the mouse, a pen or a finger. Your browser runs the network on every frame: the "
               "28 x 28 input, each convolution's and pooling's feature maps, each dense layer's units, the ten "
               "probabilities. Click a channel to see its kernels and what feeds it, or a unit.")
else:
    st.caption("Draw with the mouse, a pen or a finger. Your browser runs the network on every frame: the "
               "28 x 28 input, each hidden layer's units, the ten probabilities. Click a unit to see what "
               "feeds it; slide through training to watch the features form.")
if entry.dataset != "mnist":
    st.info(f"This model reads {entry.dataset_title} ({', '.join(entry.classes)}): draw one as a white "
            "shape on black.")
inside.show(entry)
