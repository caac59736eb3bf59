"""Visitor-written text (run names, file names, what was typed in a form) made safe to show:
as Markdown for Streamlit's text elements, as HTML for Plotly's legends and hover texts.

Imports the standard library only; every ui layer may use it. Streamlit's st.markdown,
caption, subheader, error, success and widget labels read Markdown (links, images, emphasis,
:colour[] and $maths$); Plotly reads a subset of HTML (<a href>, <b>, <br>, <span>). Text a
visitor wrote passes through md() or html() on its way to either, so it shows as written.
"""

from __future__ import annotations

import html as _html
import re
import string

# CommonMark lets a backslash escape any ASCII punctuation character; escaping all of them
# leaves no syntax at all, Streamlit's own (:red[...], :material/...:, $...$) included.
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
# Escapes do not reach what Streamlit does to the text once parsed: GFM's autolinks (http://...,
# www...., a@b.c) and emoji (:smile:) are found in the parsed text. An invisible word joiner
# (U+2060) after every colon, before every @ and after "www" breaks each pattern; the browser
# shows the text unchanged (seen in a test_browser screenshot: without it, http://evil.example
# in a run's name was a link).
_JOINER = "\u2060"
_PATTERNS = re.compile(r"(?<=:)|(?=@)|(?<=www)(?=\.)", re.IGNORECASE)


def md(text: object) -> str:
    """Any text -> Markdown that shows exactly that text: every ASCII punctuation character
    escaped, autolinks and emoji broken by a word joiner, line breaks made spaces (a break
    would start a new block: a heading, a list)."""
    text = _PATTERNS.sub(_JOINER, _LINE_BREAKS.sub(" ", str(text)))
    return _PUNCTUATION.sub(r"\\\1", text)


def html(text: object) -> str:
    """Any text -> HTML that shows exactly that text (for Plotly's names and hover texts)."""
    return _html.escape(str(text), quote=True)
