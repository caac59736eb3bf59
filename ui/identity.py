"""Who the visitor is: the signed-in account where the deployment turns on Streamlit's login
(`[auth]` in .streamlit/secrets.toml), else an anonymous key kept in the browser's localStorage
(ui/identity.js, a Components v2 component). The owner id stored with runs and models is a
hash of either: never the key itself, and never in a URL.

Imports streamlit only. Tests set OWNER_KEY in the session to be a visitor.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import streamlit as st

OWNER_KEY = "identity.owner"  # this session's owner id
NAME_KEY = "identity.name"  # how the page names the visitor
KEY_KEY = "identity.key"  # the browser's key, as the component last handed it over
_KEY = re.compile(r"^[0-9a-f]{32}$")
_component = st.components.v2.component(
    "mnistnet_identity", js=(Path(__file__).with_name("identity.js")).read_text(), html="<span></span>")


def _hash(kind: str, value: str) -> str:
    return f"{kind}-{hashlib.sha256(f'mnistnet:{kind}:{value}'.encode()).hexdigest()[:32]}"


def login_enabled() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:
        return False
    except Exception:  # a malformed secrets file: no login rather than no page
        return False


def _account() -> tuple[str, str] | None:
    if not login_enabled() or not st.user.is_logged_in:
        return None
    sub = st.user.get("sub") or st.user.get("email")
    ident = f"{st.user.get('iss') or ''} {sub}" if sub else None  # one provider's sub is not another's
    name = st.user.get("email") or st.user.get("name") or "you"
    return (_hash("user", str(ident)), str(name)) if ident else None


def owner() -> str | None:
    """This visitor's owner id (None until `mount` has learnt it)."""
    return st.session_state.get(OWNER_KEY)


def mount() -> str | None:
    """Learn who the visitor is; call once per page run, first. -> the owner id, or None on the
    very first run of a page, before the browser has said who it is (the page then stops; the
    browser's answer reruns it)."""
    account = _account()
    if account is not None:
        st.session_state[OWNER_KEY], st.session_state[NAME_KEY] = account
        return account[0]
    result = _component(key="identity.component", data=st.session_state.get(KEY_KEY), on_key_change=_noop,
                        height="content")
    value = str(getattr(result, "key", None) or "")
    if _KEY.match(value) and value != st.session_state.get(KEY_KEY):
        st.session_state[KEY_KEY] = value
        st.session_state[OWNER_KEY], st.session_state[NAME_KEY] = _hash("v", value), "this browser"
    return st.session_state.get(OWNER_KEY)


def _noop() -> None:
    """The key arriving reruns the page; nothing else to do."""


def login_button() -> None:
    """Sign in / out in the sidebar, when the deployment has login turned on."""
    if not login_enabled():
        return
    if st.user.is_logged_in:
        st.text(f"Signed in as {st.session_state.get(NAME_KEY, 'you')}.")  # plain: a name is not Markdown
        st.button("Sign out", on_click=st.logout, key="identity.logout", icon=":material/logout:")
    else:
        st.caption("Your work is kept for this browser. Sign in to have it everywhere.")
        st.button("Sign in", on_click=st.login, key="identity.login", icon=":material/login:")
