"""`make share` in a real browser: two Streamlit processes behind HAProxy, one store, one TLS
training cluster (python -m mnistnet.share). Two visitors on different server processes see each
other's shared run; the server of one is killed, and that visitor's page reconnects through the
proxy to the other, with their run still training and theirs to stop."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import test_browser
import test_browser_shared
from playwright.sync_api import expect
from test_browser import ROOT, STEP_MS, free_port
from test_browser_shared import PAGES, assert_clean, open_page, start_long_run, stop_button

from mnistnet.share import COOKIE
from mnistnet.store import Store

pytestmark = pytest.mark.browser
browser, visitor = test_browser.browser, test_browser_shared.visitor  # the fixtures, by name


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """`python -m mnistnet.share` with two servers and two workers on a fresh store -> its
    share.json, with the proxy's URL."""
    folder = tmp_path_factory.mktemp("share")
    port = free_port()
    env = {**os.environ, "MNISTNET_DB_URL": f"sqlite:///{folder}/lab.sqlite3"}
    proc = subprocess.Popen([sys.executable, "-m", "mnistnet.share", "--port", str(port), "--host", "127.0.0.1",
                             "--servers", "2", "--workers", "2", "--folder", str(folder / "run")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    info_file = folder / "run" / "share.json"
    deadline = time.monotonic() + 240
    try:
        while not info_file.exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the shared lab did not start"
            time.sleep(0.2)
        info = json.loads(info_file.read_text())
        info["db_url"] = env["MNISTNET_DB_URL"]
        yield info
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    for pid in [s["pid"] for s in info["servers"]] + info["workers"]:  # its children went with it
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def sockets(page) -> list:
    """The page's Streamlit websockets, as they open (each with a 'closed' flag)."""
    seen = []

    def opened(ws):
        if ws.url.endswith("/_stcore/stream"):
            ws.closed = False
            ws.on("close", lambda w: setattr(w, "closed", True))
            seen.append(ws)

    page.on("websocket", opened)
    return seen


def test_two_visitors_two_servers_one_killed(shared, visitor):
    url = shared["url"]
    a, b = visitor(), visitor()
    for page, server in ((a, "s1"), (b, "s2")):  # the proxy's stickiness, chosen for the test
        page.context.add_cookies([{"name": COOKIE, "value": server, "url": url}])
    a_sockets, b_sockets = sockets(a), sockets(b)
    start_long_run(a, url)  # on server 1; it trains on the shared cluster
    store = Store(shared["db_url"])
    try:
        rid = store.list_runs(limit=1)[0]["id"]  # the store's only run
        open_page(b, url, f"/Runs?run={rid}")  # on server 2
        expect(b.get_by_role("heading", name=re.compile(rf"Run #{rid}.*someone else's"))).to_be_visible()
        assert_clean(b, "B's view of A's shared run")
        assert {c["name"]: c["value"] for c in a.context.cookies()}[COOKIE] == "s1"
        assert {c["name"]: c["value"] for c in b.context.cookies()}[COOKIE] == "s2"

        first = shared["servers"][0]
        assert len(a_sockets) == 1 and not a_sockets[0].closed
        os.kill(first["pid"], signal.SIGKILL)  # A's server
        deadline = time.monotonic() + 4 * STEP_MS / 1000
        while not (a_sockets[0].closed and len(a_sockets) >= 2):  # A's page lost its socket, opened another
            assert time.monotonic() < deadline, f"A's page did not reconnect: {[(w.url, w.closed) for w in a_sockets]}"
            a.wait_for_timeout(200)  # Playwright delivers the socket events while it waits
        expect(a.get_by_text(re.compile(r"Training: epoch \d+/"))).to_be_visible(timeout=4 * STEP_MS)
        assert not any(ws.closed for ws in b_sockets)  # B's server never went away
        assert_clean(a, "A's Train page after its server was killed")
        test_browser.shot(a, "share-reconnected")
        epochs = store.run(rid)["epochs"]
        deadline = time.monotonic() + 4 * STEP_MS / 1000
        while store.run(rid)["epochs"] <= epochs:  # the run trains on: the cluster is not the server's
            assert time.monotonic() < deadline, "A's run stopped training when its server was killed"
            time.sleep(0.5)
        stop_button(a).click()  # through server 2 now
        deadline = time.monotonic() + 4 * STEP_MS / 1000
        while (row := store.run(rid))["status"] != "stopped":
            assert time.monotonic() < deadline, row["status"]
            time.sleep(0.2)
        assert row["error"] is None and row["model_id"] is not None
        open_page(b, url, "/")  # B still served, by the server that never went away
        expect(b.get_by_text(PAGES["/"]).first).to_be_visible()
    finally:
        store.engine.dispose()
