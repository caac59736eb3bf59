"""Page set-up that needs nothing but Streamlit, so a page can show its title before NumPy,
SQLAlchemy and the rest are imported: the page config and the sidebar's links.
"""

from __future__ import annotations

import streamlit as st

# (script, label, icon). Our own sidebar links: the pages folder would label the home "app".
PAGES = [("app.py", "Home", ":material/home:"), ("pages/1_Train.py", "Train", ":material/model_training:"),
         ("pages/2_Analyze.py", "Analyze", ":material/grid_on:"), ("pages/3_Draw.py", "Draw", ":material/draw:"),
         ("pages/4_Runs.py", "Runs", ":material/history:"), ("pages/5_Data.py", "Data", ":material/database:"),
         ("pages/6_Sweep.py", "Sweep", ":material/tune:"), ("pages/7_Inside.py", "Inside", ":material/neurology:")]


def configure(title: str) -> None:
    """The browser tab's title and the wide layout; safe to call again later in the run."""
    st.set_page_config(page_title=f"{title} · mnistnet", page_icon=":material/draw:", layout="wide")


def sidebar() -> None:
    with st.sidebar:
        st.markdown("### mnistnet")
        for script, label, icon in PAGES:
            st.page_link(script, label=label, icon=icon)
