"""The Draw page's canvas and the drawing it keeps across page switches.

Imports streamlit, streamlit-drawable-canvas and numpy. The canvas forgets everything when
the page is left; so this module keeps the last drawing (Fabric JSON) and the last image in
the session, hands the JSON back as `initial_drawing` only when the canvas mounts, and keeps
passing that same value while it stays mounted (a changed `initial_drawing` redraws it).
Right after a mount the canvas returns no image, so the kept image stands in.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

SIZE = 280
JSON_KEY = "draw.json"  # the last drawing as Fabric JSON
IMAGE_KEY = "draw.image"  # the last canvas image: (280, 280, 4) uint8 RGBA; tests inject here
MOUNT_KEY = "draw.mount"  # (canvas version, initial_drawing given at mount)
VERSION_KEY = "draw.version"  # bumped by Clear: a new key mounts an empty canvas


def clear() -> None:
    st.session_state[VERSION_KEY] = st.session_state.get(VERSION_KEY, 0) + 1
    for k in (JSON_KEY, IMAGE_KEY, MOUNT_KEY):
        st.session_state.pop(k, None)


def remount() -> None:
    """Call when the canvas was not on screen in this session's previous run."""
    st.session_state.pop(MOUNT_KEY, None)


def draw(pen_width: int) -> np.ndarray | None:
    """Show the canvas; return the current drawing as (280, 280, 4) uint8, or None if none yet."""
    # Imported here: registering the component needs a running Streamlit (not so in a plain
    # pytest import of this module), and only this page needs it.
    from streamlit_drawable_canvas import st_canvas

    version = st.session_state.get(VERSION_KEY, 0)
    mount = st.session_state.get(MOUNT_KEY)
    if mount is None or mount[0] != version:
        mount = (version, st.session_state.get(JSON_KEY))
        st.session_state[MOUNT_KEY] = mount
    result = st_canvas(
        stroke_width=pen_width, stroke_color="#FFFFFF", background_color="#000000",
        width=SIZE, height=SIZE, drawing_mode="freedraw", initial_drawing=mount[1],
        return_image_data=True, update_streamlit=True, key=f"draw.canvas.{version}")
    image = result.image_data
    if image is not None:
        st.session_state[IMAGE_KEY] = np.asarray(image, dtype=np.uint8)
        st.session_state[JSON_KEY] = result.json_data
    return st.session_state.get(IMAGE_KEY)
