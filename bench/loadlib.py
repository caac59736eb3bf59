"""One simulated visitor of the lab: a real Streamlit session over the server's own websocket
(`/_stcore/stream`), driven the way the lab's page in a browser drives it. bench/load.py plays
many at once; tests/test_load.py holds one against Chromium.

Imports the standard library, websockets, httpx, numpy, Pillow, Streamlit's protobufs and
bench/strokes.py (the Draw page's strokes); never the app. What the browser does, and so this
client (checked against Chromium's own frames, tests/test_load.py):

- Opening a URL: GET /_stcore/health and /_stcore/host-config, then the websocket (subprotocol
  "streamlit"), then a BackMsg rerun_script whose ClientState holds the page's name from the
  path ("Draw"; "" for Home), no widget states. A sidebar link sends the page's
  page_script_hash (from new_session.app_pages) with no widget states and no query string.
- Cookies: what the responses set is sent back on every later request and on the websocket's
  upgrade (behind mnistnet.share, the proxy's sticky cookie: a visitor stays on the server it
  first reached, where its session and media are, as a browser does).
- Every other rerun sends every widget's value, as the browser's widget manager holds them:
  what the visitor set, else what the element says (its value when set_value, else default);
  buttons, charts and components only once used. A button is trigger_value for one run.
- Identity (ui/identity.js): a Components v2 component; whenever its `data` (the key Python has)
  is not the visitor's key, it sets its state {"key": <32 hex>}: a json_value for the
  component's id, then a rerun. Each simulated visitor has its own key.
- The canvas (streamlit-drawable-canvas 0.13, also Components v2): on each pen-up it sets
  {"drawing": {"raw": Fabric JSON, "data": PNG data URL}} and reruns its fragment (fragment_id).
- Analyze's matrix: the plotly chart's string_value, a selection JSON with the clicked point.
- A fragment with run_every sends auto_rerun {interval, fragment_id}; the browser then reruns
  that fragment (is_auto_rerun) every interval. Here only `watch` does, one poll at a time.
- Messages of 10 KB or more come with metadata.cacheable; later reruns list their hashes in
  cached_message_hashes and the server may answer with ref_hash. Images are fetched (/media/..)
  once per visitor, as a browser caches them; static JavaScript and fonts are not fetched.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import websockets
from PIL import Image
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState, ContextInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

sys.path.insert(0, str(Path(__file__).resolve().parent))
import strokes  # noqa: E402 (bench/strokes.py)

DONE = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY,
        ForwardMsg.FINISHED_WITH_COMPILE_ERROR}  # not FINISHED_EARLY_FOR_RERUN: another run follows
IDENTITY = "mnistnet_identity"  # ui/identity.py's component name


@dataclass
class Result:
    """One timed action: from its BackMsg sent to the script_finished that ends it."""

    name: str
    seconds: float = 0.0
    failure: str | None = None  # an exception element, a timeout, a closed socket
    ws_bytes: int = 0  # ForwardMsg payloads received
    media_bytes: int = 0  # images fetched for it
    kinds: set = field(default_factory=set)  # ForwardMsg kinds ("delta", "new_session", ...)
    elements: set = field(default_factory=set)  # element types of its deltas ("heading", ...)
    headings: list = field(default_factory=list)  # heading bodies, in order
    alerts: list = field(default_factory=list)  # st.error texts shown (not failures by themselves)
    reruns: int = 0  # BackMsgs it took (the identity handshake adds one)


class Visitor:
    """A browser tab of one visitor; `await v.open("/")`, then actions, each a Result.
    `cookies` are what its browser holds before the first request (a proxy's sticky cookie
    naming a server, to pin the visitor there); the responses' Set-Cookie add to them."""

    def __init__(self, base_url: str, key: str, timeout: float = 60.0, cookies: dict[str, str] | None = None):
        self.base, self.key, self.timeout = base_url.rstrip("/"), key, timeout
        self.pinned = dict(cookies or {})
        self.results: list[Result] = []
        self.page_hash, self.main_hash, self.pages, self.query = "", "", {}, ""
        self.elements: dict[tuple, tuple] = {}  # delta path -> (run id, fragment id, Element)
        self.values: dict[str, WidgetState] = {}  # widget id -> its value, as the browser holds it
        self.auto: dict[str, float] = {}  # fragment id -> auto-rerun interval, s
        self.cache: dict[str, list] = {}  # hash -> [ForwardMsg, run count at last use]
        self.runs, self.max_age = 0, 2
        self.media: set[str] = set()
        self.ws = self.http = self._reader = None
        self._sent = self._started = 0  # BackMsgs sent; the count when the last run started
        self._run, self._run_frags, self._finished = "", (), asyncio.Event()
        self._current: Result | None = None
        self.closed: str | None = None

    # -- connection ------------------------------------------------------------------------

    async def connect(self) -> None:
        # httpx's jar keeps the Set-Cookie of every response and sends it back, as a browser does
        self.http = httpx.AsyncClient(base_url=self.base, timeout=self.timeout,
                                      limits=httpx.Limits(max_connections=6))  # a browser's per host
        for name, value in self.pinned.items():
            self.http.cookies.set(name, value, domain=urlsplit(self.base).hostname)
        for path in ("/_stcore/health", "/_stcore/host-config"):
            (await self.http.get(path)).raise_for_status()
        ws_url = "ws" + self.base[4:] + "/_stcore/stream"
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self.ws = await websockets.connect(ws_url, subprotocols=["streamlit"], max_size=None,
                                           open_timeout=self.timeout, ping_interval=None,
                                           additional_headers={"Cookie": cookie} if cookie else None)
        self._reader = asyncio.create_task(self._read())

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies this visitor's browser holds for the lab (name -> value)."""
        if self.http is None:
            return dict(self.pinned)
        return {c.name: c.value for c in self.http.cookies.jar}

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.http is not None:
            await self.http.aclose()

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                self._on_frame(data)
        except websockets.ConnectionClosed as e:
            self.closed = f"socket closed ({e.code})"
        finally:
            self.closed = self.closed or "socket closed"
            self._finished.set()

    # -- what the server sends --------------------------------------------------------------

    def _on_frame(self, data: bytes) -> None:
        msg = ForwardMsg()
        msg.ParseFromString(data)
        cur = self._current
        if cur is not None:
            cur.ws_bytes += len(data)
        if msg.ref_hash:  # the browser substitutes the message it cached
            hit = self.cache.get(msg.ref_hash)
            if hit is None:
                return self._fail(f"ref_hash {msg.ref_hash} not cached")
            hit[1] = self.runs
            cached = ForwardMsg()
            cached.CopyFrom(hit[0])
            cached.metadata.CopyFrom(msg.metadata)
            msg = cached
        elif msg.metadata.cacheable:
            self.cache[msg.hash] = [msg, self.runs]
        kind = msg.WhichOneof("type")
        if cur is not None:
            cur.kinds.add(kind)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(msg)

    def _on_new_session(self, msg: ForwardMsg) -> None:
        s = msg.new_session
        self.page_hash, self.main_hash = s.page_script_hash, s.main_script_hash
        self.pages = {p.page_name: p.page_script_hash for p in s.app_pages}
        self.max_age = s.config.max_cached_message_age or self.max_age
        self._run, self._run_frags = msg.metadata.run.script_run_id, tuple(msg.metadata.run.fragment_ids)
        if not self._run_frags:
            self.auto.clear()  # a full run registers its fragments' timers again
        self._started = self._sent

    def _on_delta(self, msg: ForwardMsg) -> None:
        d = msg.delta
        path = tuple(msg.metadata.delta_path)
        if d.WhichOneof("type") != "new_element":
            self.elements[path] = (self._run, d.fragment_id, None)  # a block: kept for staleness
            return
        el = d.new_element
        kind = el.WhichOneof("type")
        self.elements[path] = (self._run, d.fragment_id, el)
        widget = getattr(el, kind)
        if getattr(widget, "id", "") and (widget.id not in self.values or getattr(widget, "set_value", False)):
            # The browser's widget manager: a widget's value is registered when it first shows
            # (its default) and replaced when the script sets it; otherwise the visitor's stays.
            state = initial_state(kind, widget)
            if state is not None:
                self.values[widget.id] = state
        cur = self._current
        if cur is None:
            return
        cur.elements.add(kind)
        if kind == "heading":
            cur.headings.append(el.heading.body)
        elif kind == "exception":
            self._fail(f"exception element: {el.exception.type}: {el.exception.message}"[:300])
        elif kind == "alert" and el.alert.format == el.alert.ERROR:
            cur.alerts.append(el.alert.body[:200])

    def _on_page_info_changed(self, msg: ForwardMsg) -> None:
        self.query = msg.page_info_changed.query_string

    def _on_auto_rerun(self, msg: ForwardMsg) -> None:
        self.auto[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval

    def _on_stop_auto_rerun(self, msg: ForwardMsg) -> None:
        for fid in msg.stop_auto_rerun.fragment_ids:
            self.auto.pop(fid, None)

    def _on_page_not_found(self, msg: ForwardMsg) -> None:
        self._fail(f"page not found: {msg.page_not_found.page_name}")

    def _on_session_event(self, msg: ForwardMsg) -> None:
        if msg.session_event.HasField("script_compilation_exception"):
            self._fail("script compilation exception")

    def _on_script_finished(self, msg: ForwardMsg) -> None:
        status = msg.script_finished
        if status in (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY):
            self._drop_stale()
        if status in DONE:
            self.runs += 1
            self.cache = {h: v for h, v in self.cache.items() if self.runs - v[1] <= self.max_age}
            if self._started == self._sent:  # the run that answers our last BackMsg
                self._finished.set()

    def _drop_stale(self) -> None:
        """What the browser clears when a run ends: elements the run did not send again (for a
        fragment's run, only inside it), and the values of widgets no longer shown."""
        frags = self._run_frags
        self.elements = {p: e for p, e in self.elements.items()
                         if e[0] == self._run or (frags and e[1] not in frags)}
        shown = {w.id for _, w in self.widgets()}
        self.values = {i: v for i, v in self.values.items() if i in shown}

    def _fail(self, why: str) -> None:
        if self._current is not None and self._current.failure is None:
            self._current.failure = why

    # -- widgets ------------------------------------------------------------------------------

    def widgets(self):
        """(kind, widget proto) of every element on the page with an id."""
        for _, _, el in self.elements.values():
            if el is not None:
                kind = el.WhichOneof("type")
                w = getattr(el, kind)
                if getattr(w, "id", ""):
                    yield kind, w

    def find(self, kind: str, key: str | None = None, label: str | None = None):
        """The widget of this kind whose key (the end of its id) or label matches, or None."""
        for k, w in self.widgets():
            if k == kind and (key is None or w.id.endswith("-" + key)) and (
                    label is None or getattr(w, "label", None) == label):
                return w
        return None

    def fragment_of(self, widget_id: str) -> str:
        for _, frag, el in self.elements.values():
            if el is not None and getattr(getattr(el, el.WhichOneof("type")), "id", "") == widget_id:
                return frag
        return ""

    def widget_states(self, trigger: str | None = None) -> list[WidgetState]:
        out = [self.values[w.id] for _, w in self.widgets() if w.id in self.values]
        if trigger is not None:
            out.append(WidgetState(id=trigger, trigger_value=True))
        return out

    # -- sending -----------------------------------------------------------------------------

    async def _send(self, cs: ClientState) -> None:
        cs.cached_message_hashes.extend(self.cache)
        cs.context_info.CopyFrom(ContextInfo(timezone="UTC", timezone_offset=0, locale="en-US",
                                             url=self.base + "/", is_embedded=False, color_scheme="light"))
        self._sent += 1
        self._finished.clear()
        await self.ws.send(BackMsg(rerun_script=cs).SerializeToString())
        self._current.reruns += 1

    async def _wait(self, deadline: float) -> None:
        try:
            await asyncio.wait_for(self._finished.wait(), max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            self._fail(f"timeout after {self.timeout:.0f} s")
        if self.closed:
            self._fail(self.closed)

    async def act(self, name: str, cs: ClientState) -> Result:
        """Send one rerun and wait for its end, then answer as the page's components would
        (the identity key); fetch the new images. -> the timed Result."""
        res = self._current = Result(name)
        t0 = time.monotonic()
        deadline = t0 + self.timeout
        try:
            if self.closed:
                raise ConnectionError(self.closed)
            await self._send(cs)
            await self._wait(deadline)
            while res.failure is None and (ident := self._identity_to_send()) is not None:
                self.values[ident] = WidgetState(id=ident, json_value=json.dumps({"key": self.key}))
                await self._send(ClientState(page_script_hash=self.page_hash, query_string=self.query,
                                             widget_states={"widgets": self.widget_states()}))
                await self._wait(deadline)
            res.seconds = time.monotonic() - t0
            await self._fetch_media(res)
        except (ConnectionError, websockets.ConnectionClosed, httpx.HTTPError) as e:
            res.seconds = time.monotonic() - t0
            self._fail(f"{type(e).__name__}: {e}"[:200])
        finally:
            self._current = None
        self.results.append(res)
        return res

    def _identity_to_send(self) -> str | None:
        """ui/identity.js: `if (data !== key) setStateValue("key", key)`."""
        for kind, w in self.widgets():
            if kind == "bidi_component" and w.component_name == IDENTITY:
                data = json.loads(w.json) if w.json else None
                sent = self.values.get(w.id)
                if data != self.key and sent is None:
                    return w.id
        return None

    async def _fetch_media(self, res: Result) -> None:
        urls = [img.url for _, _, el in self.elements.values()
                if el is not None and el.WhichOneof("type") == "imgs" for img in el.imgs.imgs]
        new = [u for u in dict.fromkeys(urls) if u not in self.media and not u.startswith("data:")]
        self.media.update(new)
        replies = await asyncio.gather(*(self.http.get(u) for u in new))
        for r in replies:
            r.raise_for_status()
            res.media_bytes += len(r.content)

    # -- actions -------------------------------------------------------------------------------

    async def open(self, path: str = "/", name: str = "home") -> Result:
        """A new tab at this URL path: connect, then the page's first run (and the identity's)."""
        if self.ws is None:
            await self.connect()
        self.query = path.partition("?")[2]
        return await self.act(name, ClientState(page_name=path.partition("?")[0].strip("/"),
                                                query_string=self.query))

    async def goto(self, page: str, name: str | None = None) -> Result:
        """A sidebar link: "Home", "Train", "Draw", ... (the browser forgets the old page's widgets)."""
        target = self.main_hash if page == "Home" else self.pages.get(page)
        if target is None:
            raise ValueError(f"no page named {page!r}; the app has {sorted(self.pages)}")
        self.values.clear()
        self.query = ""
        return await self.act(name or page.lower(), ClientState(page_script_hash=target))

    async def rerun(self, name: str, fragment_id: str = "", trigger: str | None = None,
                    auto: bool = False) -> Result:
        return await self.act(name, ClientState(
            page_script_hash=self.page_hash, query_string=self.query, fragment_id=fragment_id,
            is_auto_rerun=auto, widget_states={"widgets": self.widget_states(trigger)}))

    async def click(self, name: str, key: str | None = None, label: str | None = None) -> Result:
        button = self.find("button", key, label)
        if button is None:
            return self._missing(name, f"button {key or label!r}")
        return await self.rerun(name, self.fragment_of(button.id), trigger=button.id)

    async def set_value(self, name: str, kind: str, key: str, **value) -> Result:
        """Change a widget as its element in the browser would: WidgetState fields as keywords."""
        w = self.find(kind, key)
        if w is None:
            return self._missing(name, f"{kind} {key!r}")
        self.values[w.id] = WidgetState(id=w.id, **value)
        return await self.rerun(name, self.fragment_of(w.id))

    def _missing(self, name: str, what: str) -> Result:
        res = Result(name, failure=f"no {what} on the page")
        self.results.append(res)
        return res

    async def stroke(self, drawing: strokes.Drawing, n_strokes: int, name: str = "draw_stroke") -> Result:
        """Pen-up after stroke `n_strokes` of `drawing` on the Draw page's canvas."""
        canvas = next((w for k, w in self.widgets()
                       if k == "bidi_component" and "draw.canvas." in w.id), None)
        if canvas is None:
            return self._missing(name, "canvas")
        value = {"drawing": canvas_value(drawing, n_strokes)}
        self.values[canvas.id] = WidgetState(id=canvas.id, json_value=json.dumps(value))
        return await self.rerun(name, self.fragment_of(canvas.id))

    async def select_cell(self, true: int, pred: int, name: str = "analyze_cell") -> Result:
        """Click cell (true, pred) of Analyze's confusion matrix: the invisible marker there."""
        chart = self.find("plotly_chart", "analyze.cm")
        if chart is None:
            return self._missing(name, "confusion matrix")
        i = 10 * true + pred  # ui/figures.py: the markers' trace, row-major (true, predicted)
        point = {"curve_number": 1, "point_number": i, "point_index": i, "x": str(pred), "y": str(true),
                 "customdata": {"0": true, "1": pred}}
        selection = {"selection": {"points": [point], "point_indices": [i], "box": [], "lasso": []}}
        self.values[chart.id] = WidgetState(id=chart.id, string_value=json.dumps(selection))
        return await self.rerun(name, self.fragment_of(chart.id))

    async def watch(self, limit: float, name: str) -> list[Result]:
        """Stay on the page while it polls: rerun each run_every fragment at its interval (one
        at a time) until none is left or `limit` s have passed."""
        out, due = [], {}
        end = time.monotonic() + limit
        while self.auto and time.monotonic() < end and not self.closed:
            now = time.monotonic()
            due = {f: due.get(f, now + iv) for f, iv in self.auto.items()}
            fid = min(due, key=due.get)
            await asyncio.sleep(max(due[fid] - now, 0))
            if fid not in self.auto:
                continue
            res = await self.rerun(name, fragment_id=fid, auto=True)
            out.append(res)
            due[fid] = max(due[fid] + self.auto.get(fid, 1.0), time.monotonic())
            if res.failure:
                break
        return out

    def texts(self, kind: str) -> list[str]:
        """The text of each element of this kind now on the page (progress, alert, markdown...)."""
        field_of = {"progress": "text", "alert": "body", "markdown": "body", "heading": "body"}
        return [getattr(getattr(el, kind), field_of[kind]) for _, _, el in self.elements.values()
                if el is not None and el.WhichOneof("type") == kind]


def initial_state(kind: str, w) -> WidgetState | None:
    """The value the browser registers for a widget element: the script's value when set_value,
    else its default; None for buttons, charts and components (they have none until used)."""
    if kind == "number_input":
        v = w.value if w.set_value and w.HasField("value") else w.default if w.HasField("default") else None
        if v is None:
            return None
        return (WidgetState(id=w.id, int_value=int(v)) if w.data_type == w.INT
                else WidgetState(id=w.id, double_value=v))
    if kind in ("text_input", "text_area"):
        v = w.value if w.set_value and w.HasField("value") else w.default if w.HasField("default") else None
        return None if v is None else WidgetState(id=w.id, string_value=v)
    if kind == "selectbox":
        v = (w.raw_value if w.HasField("raw_value") else
             w.options[w.default] if w.HasField("default") and w.default < len(w.options) else None)
        return None if v is None else WidgetState(id=w.id, string_value=v)
    if kind == "button_group":
        v = list(w.raw_values) if w.set_value else [w.options[i].content for i in w.default]
        return WidgetState(id=w.id, string_array_value={"data": v})
    if kind == "checkbox":
        return WidgetState(id=w.id, bool_value=w.value if w.set_value else w.default)
    if kind == "slider":
        return WidgetState(id=w.id, double_array_value={"data": list(w.value if w.set_value else w.default)})
    if kind == "file_uploader":
        return WidgetState(id=w.id, file_uploader_state_value={})
    return None


def canvas_value(drawing: strokes.Drawing, n_strokes: int) -> dict:
    """The canvas's "drawing" state after the first n strokes: Fabric JSON (one Path per stroke,
    as Fabric's pencil makes it: M, quadratic segments through the midpoints, L) and the PNG."""
    shown = strokes.Drawing(drawing.digit, drawing.style, drawing.strokes[:n_strokes], drawing.pen,
                            drawing.height, drawing.rotation, drawing.slant)
    png = io.BytesIO()
    Image.fromarray(strokes.render(shown), "RGBA").save(png, format="PNG")
    objects = [_fabric_path(np.round(s, 2), drawing.pen) for s in shown.strokes]
    return {"raw": {"version": "7.4.0", "objects": objects, "background": "#000000"},
            "data": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()}


def _fabric_path(points: np.ndarray, pen: int) -> dict:
    p = points.tolist()
    path = [["M", *p[0]]] + [["Q", *a, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2] for a, b in zip(p[1:-1], p[2:])]
    path.append(["L", *p[-1]])
    lo, hi = points.min(0), points.max(0)
    return {"type": "Path", "version": "7.4.0", "originX": "center", "originY": "center",
            "left": float((lo[0] + hi[0]) / 2), "top": float((lo[1] + hi[1]) / 2),
            "width": float(hi[0] - lo[0]), "height": float(hi[1] - lo[1]), "fill": None,
            "stroke": "#FFFFFF", "strokeWidth": pen, "strokeLineCap": "round", "strokeLineJoin": "round",
            "scaleX": 1, "scaleY": 1, "angle": 0, "opacity": 1, "path": path}


def class_drawings(n: int, seed: int) -> list[strokes.Drawing]:
    """n easy drawings (bench/strokes.py), digits in turn from a seeded generator."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        digit = i % 10
        style = list(strokes.STYLES[digit])[int(rng.integers(len(strokes.STYLES[digit])))]
        out.append(strokes.make_drawing(digit, style, strokes.EASY, rng))
    return out
