"""mnistnet's home page: what this is, the current model, links to the pages.

Run with `streamlit run app.py`. Pages live in pages/ (Streamlit's pages folder); shared UI
code in ui/; the network itself in mnistnet/.
"""

import streamlit as st

# The title and what this is come first, with nothing but Streamlit imported: on a cold server
# they are on screen while NumPy, SQLAlchemy and the rest load (about 1 s on 2 cores).
from ui import nav  # noqa: I001 (Streamlit only)

nav.configure("Home")
st.title("mnistnet")
st.markdown(
    "A neural network written from scratch in NumPy that learns to read handwritten digits.  \n"
    "Train one on MNIST, see which digits it confuses, then draw your own for it to read.  \n"
    "No deep-learning framework: every forward and backward pass is plain matrix arithmetic.")

from ui import runs, views  # noqa: E402

views.page("home", "Home")

st.subheader("Your current model")
runs.upload_message("home.upload")
entry = views.require_model()
if entry is not None:
    views.model_summary(entry)
with st.expander("Save this model, or load one from a file"):
    views.model_download(entry)
    runs.model_upload("home.upload")

st.subheader("Pages")
st.page_link("pages/1_Train.py", label="Train: design a network and watch it learn", icon=":material/model_training:")
st.page_link("pages/2_Analyze.py", label="Analyze: where does it err? Click the confusion matrix",
             icon=":material/grid_on:")
st.page_link("pages/3_Draw.py", label="Draw: write a digit for the network to read", icon=":material/draw:")
st.page_link("pages/4_Runs.py", label="Runs: yours and everyone's; compare, reuse, share, download",
             icon=":material/history:")
st.page_link("pages/5_Data.py", label="Data: the samples in the store; upload your own digits",
             icon=":material/database:")
st.page_link("pages/6_Sweep.py", label="Sweep: train many networks at once and compare them",
             icon=":material/tune:")
