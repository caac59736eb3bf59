"""The load harness (bench/load.py, bench/loadlib.py) held to the real thing: one simulated
visitor and Chromium open the same pages of one server and see the same pages; three
simulated visitors take every step of the class, training included, without a failure; three
more through `mnistnet.share`'s proxy keep its cookie, as browsers do, and so stay on their
server (both servers serve someone).

Figures (latency per page, both ways) go to artifacts/load_vs_chromium.json; no timed
assertions.
"""

import asyncio
import base64
import json
import secrets
import sys
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from test_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, settled, sidebar_link

from mnistnet.share import haproxy_path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import load  # noqa: E402
import loadlib  # noqa: E402

pytestmark = pytest.mark.browser
# The lab's default preset, narrower and one epoch: the model every visitor gets, in 2 s.
SMALL_MODEL = ["--preset", "default", "--hidden", "64", "--epochs", "1"]
PAGES = ["Home", "Draw", "Analyze"]
TITLES = {"Home": "Your current model", "Draw": "Draw a digit", "Analyze": "Where does the network err?"}
# element type in the protobufs -> the data-testid the browser gives it (Streamlit 1.67)
TESTID = {"heading": "stHeading", "markdown": "stMarkdown", "page_link": "stPageLink",
          "plotly_chart": "stPlotlyChart", "imgs": "stImage", "button": "stButton", "slider": "stSlider",
          "selectbox": "stSelectbox", "metric": "stMetric", "alert": "stAlert", "dataframe": "stDataFrame",
          "checkbox": "stCheckbox", "file_uploader": "stFileUploader", "download_button": "stDownloadButton",
          "progress": "stProgress", "exception": "stException"}


@pytest.fixture(scope="module")
def lab():
    server = load.Server(SMALL_MODEL)
    try:
        yield server
    finally:
        server.stop()
    assert not server.tracebacks(), server.tracebacks()[0]


def harness_pages(url: str, passes: int, pid: int) -> list[dict]:
    """One simulated visitor: Home (a new tab), then the sidebar's Draw and Analyze; later
    passes take the sidebar's Home too. -> per pass, per page: the Result, the element types
    and headings on the page when it finished, the server's CPU seconds for it."""
    async def visit():
        v, out = loadlib.Visitor(url, secrets.token_hex(16)), []
        try:
            for i in range(passes):
                out.append({})
                for name in PAGES:
                    cpu = load.cpu_seconds(pid)
                    res = await (v.open("/") if name == "Home" and i == 0 else v.goto(name))
                    shown = {el.WhichOneof("type") for _, _, el in v.elements.values() if el is not None}
                    out[-1][name] = {"result": res, "shown": shown, "headings": sorted(v.texts("heading")),
                                     "cpu_s": load.cpu_seconds(pid) - cpu}
        finally:
            await v.close()
        return out
    return asyncio.run(visit())


class Frames:
    """Chromium's websocket frame by frame, from DevTools' Network events. Chromium stamps a
    frame when its page thread takes it, so a page busy drawing (a first chart: Plotly's code
    loads) takes the next frames later: its times are the page's, not the network's."""

    def __init__(self):
        self.sent, self.received = [], []  # (s, BackMsg kind); (s, ForwardMsg)

    def on_sent(self, event: dict) -> None:
        msg = BackMsg()
        msg.ParseFromString(base64.b64decode(event["response"]["payloadData"]))
        self.sent.append((event["timestamp"], msg.WhichOneof("type")))

    def on_received(self, event: dict) -> None:
        if event["response"]["opcode"] == 2:  # binary: Streamlit's protobufs
            msg = ForwardMsg()
            msg.ParseFromString(base64.b64decode(event["response"]["payloadData"]))
            self.received.append((event["timestamp"], msg))

    def page(self, since: tuple[int, int]) -> dict:
        """The frames after `since` (counts sent, received): kinds, element types, headings, the
        seconds from the first rerun_script sent to the last script_finished, and the sum of each
        rerun's own seconds (without the page's time between them: the identity key's component
        loads before it answers)."""
        sent = [t for t, k in self.sent[since[0]:] if k == "rerun_script"]
        got = self.received[since[1]:]
        done = [t for t, m in got if m.WhichOneof("type") == "script_finished" and m.script_finished in loadlib.DONE]
        elements = [m.delta.new_element for _, m in got
                    if m.WhichOneof("type") == "delta" and m.delta.WhichOneof("type") == "new_element"]
        runs = [min((d for d in done if d > t), default=t) - t for t in sent]  # each rerun to its end
        return {"kinds": {m.WhichOneof("type") for _, m in got},
                "elements": {el.WhichOneof("type") for el in elements},
                "headings": [el.heading.body for el in elements if el.WhichOneof("type") == "heading"],
                "seconds": done[-1] - sent[0] if sent and done else None, "runs_seconds": sum(runs)}


def chromium_pages(url: str, passes: int, pid: int) -> list[dict]:
    """The same pages in Chromium: per pass, per page, its frames, its DOM once settled and the
    server's CPU seconds for it."""
    frames, out = Frames(), []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.on("Network.webSocketFrameSent", frames.on_sent)
            cdp.on("Network.webSocketFrameReceived", frames.on_received)
            cdp.send("Network.enable")
            for i in range(passes):
                out.append({})
                for name in PAGES:
                    since, cpu = (len(frames.sent), len(frames.received)), load.cpu_seconds(pid)
                    if name == "Home" and i == 0:
                        page.goto(url + "/")
                    else:
                        sidebar_link(page, name).click()
                    page.get_by_test_id("stHeading").filter(has_text=TITLES[name]).wait_for()
                    settled(page, quiet_ms=500)
                    ids = set(page.evaluate("() => Array.from(document.querySelectorAll('[data-testid]'), "
                                            "e => e.getAttribute('data-testid'))"))
                    headings = sorted(h.strip() for h in page.get_by_test_id("stHeading").all_inner_texts())
                    out[-1][name] = {"frames": frames.page(since), "testids": ids, "headings": headings,
                                     "cpu_s": load.cpu_seconds(pid) - cpu}
        finally:
            browser.close()
    return out


def test_one_simulated_visitor_sees_what_chromium_sees(lab):
    harness_pages(lab.url, 1, lab.pid)  # warm the server: the first visitor pays its imports
    ours, theirs = harness_pages(lab.url, 2, lab.pid), chromium_pages(lab.url, 2, lab.pid)
    figures = {}
    for name in PAGES:
        for h, c in zip(ours, theirs):
            res, frames = h[name]["result"], c[name]["frames"]
            assert res.failure is None, (name, res.failure)
            assert "exception" not in res.elements | frames["elements"], name
            assert frames["seconds"] is not None, f"{name}: Chromium's page never finished"
            # the same protocol: message kinds, element types and headings
            assert res.kinds == frames["kinds"], (name, res.kinds ^ frames["kinds"])
            assert res.elements == frames["elements"], (name, res.elements ^ frames["elements"])
            assert sorted(res.headings) == sorted(frames["headings"]), name
            # the same page as the browser draws it
            assert h[name]["headings"] == c[name]["headings"], (name, h[name]["headings"], c[name]["headings"])
            drawn, dom = {TESTID[k] for k in h[name]["shown"] if k in TESTID}, c[name]["testids"] & set(TESTID.values())
            assert drawn == dom, (name, drawn ^ dom)
        first = ours[0][name]["result"]
        figures[name] = {"harness_s": [round(h[name]["result"].seconds, 3) for h in ours],
                         "chromium_s": [round(c[name]["frames"]["seconds"], 3) for c in theirs],
                         "chromium_runs_s": [round(c[name]["frames"]["runs_seconds"], 3) for c in theirs],
                         "harness_server_cpu_s": [round(h[name]["cpu_s"], 3) for h in ours],
                         "chromium_server_cpu_s": [round(c[name]["cpu_s"], 3) for c in theirs],
                         "reruns": [h[name]["result"].reruns for h in ours], "kinds": sorted(first.kinds),
                         "elements": sorted(first.elements), "headings": ours[0][name]["headings"]}
    out = ROOT / "artifacts" / "load_vs_chromium.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1))


def test_three_simulated_visitors_take_every_step(lab):
    opts = load.parse_args(["--visitors", "3", "--spread", "1", "--train", "3", "--train-size", "5000",
                            "--drawings", "2", "--watch", "90", "--no-warm-up", "--url", lab.url])
    run = asyncio.run(load.run_class(lab.url, lab.processes, opts))
    summary = load.summarise(run, opts.visitors)
    assert run["complete"]
    assert not summary["failures"], summary["failures"]
    actions = summary["actions"]
    for name in ("home", "draw_open", "draw_stroke", "draw_clear", "analyze_open", "analyze_cell",
                 "inside_open", "train_open", "runs_open", "data_open", "sweep_open", "train_size", "train_start",
                 "train_run"):
        assert actions[name]["n"] >= 3, (name, actions.get(name))
    assert actions["draw_stroke"]["n"] >= 6  # two digits each, one pen-up per stroke
    print(load.table(summary))


def test_three_visitors_through_the_proxy_stick_to_two_servers():
    """--share 2 (load.SharedLab): Home, Draw and one stroke, Analyze. A visitor's requests and
    websocket carry the proxy's cookie; one that lost it would fetch its images from a server
    that never made them (a 404, so a failure here)."""
    assert haproxy_path() is not None, "HAProxy is not installed: run `make proxy` (make test does)"
    lab = load.SharedLab(2, SMALL_MODEL)
    try:
        opts = load.parse_args(["--visitors", "3", "--spread", "1", "--drawings", "1", "--no-warm-up",
                                "--timeout", "30", "--url", lab.url])
        drawings = loadlib.class_drawings(3, seed=0)
        plan = [("home", lambda v, i: v.open("/")), ("draw_open", lambda v, i: v.goto("Draw", "draw_open")),
                ("draw_stroke", lambda v, i: v.stroke(drawings[i], 1)),
                ("analyze_open", lambda v, i: v.goto("Analyze", "analyze_open"))]
        run = asyncio.run(load.run_class(lab.url, lab.processes, opts, plan=plan, warm_cookies=lab.warm_cookies))
    finally:
        lab.stop()
    summary = load.summarise(run, opts.visitors)
    print(load.table(summary))
    assert run["complete"]
    assert not summary["failures"], summary["failures"]
    assert {name: a["n"] for name, a in summary["actions"].items()} == {name: 3 for name, _ in plan}
    assert set(run["servers"]) == set(lab.servers) == {"s1", "s2"}, run["servers"]  # each visitor's cookie
    cpu = [sum(r["servers_cpu_s"][k] for r in run["rounds"]) for k in range(2)]  # during the class
    assert all(c > 0 for c in cpu), cpu
    assert lab.processes.proxy is not None and run["cpu"]["proxy_cpu_s"] >= 0
    assert not lab.tracebacks(), lab.tracebacks()[0]
