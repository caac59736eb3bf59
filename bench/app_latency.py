"""The app's latency figures, measured in a real browser (run by hand, not a test).

    .venv/bin/python bench/app_latency.py [--rounds 3] [--strokes 10] [--json out.json]

1. Cold start to first render: `streamlit run app.py` started, until the home page's title
   shows in Chromium (median of --cold runs, alternated with a one-line Streamlit app: the
   floor). Target <= the one-line app's. Also: until the whole home page is there (its last
   link). Before them, the first start after install: the project's bytecode removed.
2. Mouse-up to prediction on screen on the Draw page: median over --strokes strokes, timed in
   the page (the pointerup event's time stamp to the first animation frame after the digit is
   in the DOM), and as Playwright sees it (mouse.up() called to the element found: this adds
   Playwright's own round trips). The same for a bare canvas app (canvas -> a number in the
   page), the floor the canvas component sets: it waits 200 ms after a stroke before it sends.
   Target <= 400 ms (a bare canvas round trip measured 284 ms).
3. A training run in the app (Train page open, live charts polling) against the CLI
   `python -m mnistnet train --json` for the same configuration (the seed preset), alternated
   over --rounds rounds; the ratio of median training times. Target <= 1.15x.
   Training time = the sum of the run's epoch seconds in both (the same clock inside
   mnistnet.train), so process start-up and data loading count for neither. The CLI runs on
   one BLAS thread like the app (--cli-blas-threads 0 for its default).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # run as a script from anywhere
from test_browser import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    DIGITS,
    VIEWPORT,
    ensure_model,
    free_port,
    start_app,
    stroke,
    wait_healthy,
)

BARE_APP = 'import streamlit as st\nst.title("mnistnet")\n'
BARE_CANVAS_APP = """
import streamlit as st
from streamlit_drawable_canvas import st_canvas

v = st.session_state.setdefault("v", 0)
r = st_canvas(stroke_width=20, stroke_color="#FFFFFF", background_color="#000000", width=280,
              height=280, drawing_mode="freedraw", return_image_data=True, key=f"c{v}")
img = r.image_data
if img is not None and img[..., 0].max() > 0:
    st.markdown(f"<span id='predicted-digit'>{int(img[..., 0].sum()) % 10}</span>",
                unsafe_allow_html=True)
else:
    st.write("Draw a digit from 0 to 9")
if st.button("Clear"):
    st.session_state["v"] += 1
    st.rerun()
"""
# In the page: the pointerup's time stamp, and the first animation frame after the
# prediction is in the DOM (performance.now() clock, milliseconds).
TIMING_JS = """
window.__up = null; window.__shown = null;
document.addEventListener('pointerup', e => { window.__up = e.timeStamp; window.__shown = null; }, true);
new MutationObserver(() => {
  if (window.__up !== null && window.__shown === null && document.querySelector('#predicted-digit')) {
    window.__shown = -1;
    requestAnimationFrame(t => { window.__shown = t; });
  }
}).observe(document, {subtree: true, childList: true});
"""


def cold_start(browser, bare: bool = False) -> dict:
    """Seconds from starting the server process to: its health check answering, the page
    loaded, the home page's title on screen (the first render), the whole home page there.

    bare: the same for a one-line Streamlit app, the floor this machine sets.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    page = browser.new_page(viewport=VIEWPORT)
    t0 = time.perf_counter()
    proc = start_bare(BARE_APP, port) if bare else start_app(port, subprocess.DEVNULL)
    try:
        wait_healthy(url, proc, interval=0.02)
        healthy = time.perf_counter() - t0
        page.goto(url)
        loaded = time.perf_counter() - t0
        page.get_by_role("heading", name="mnistnet").first.wait_for(timeout=60_000)
        title = time.perf_counter() - t0
        if not bare:  # the last element of the home page
            page.get_by_role("link", name=re.compile("^Data: ")).wait_for(timeout=60_000)
        whole = time.perf_counter() - t0
    finally:
        page.close()
        proc.terminate()
        proc.wait(timeout=10)
    return {"healthy": healthy, "loaded": loaded, "first_render": title, "whole_page": whole}


def clear_bytecode() -> int:
    """Remove the project's own __pycache__ folders (not the virtualenv's) -> how many."""
    folders = [p for p in ROOT.rglob("__pycache__") if ".venv" not in p.relative_to(ROOT).parts]
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return len(folders)


def start_bare(source: str, port: int) -> subprocess.Popen:
    folder = Path(tempfile.mkdtemp())
    (folder / "app.py").write_text(source)
    return subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py",
                             "--server.headless", "true", "--server.address", "127.0.0.1",
                             "--server.port", str(port), "--server.fileWatcherType", "none"],
                            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def open_canvas(page, url: str, draw_page: bool = True) -> None:
    """Open the Draw page (or, draw_page False, BARE_CANVAS_APP at `url`) with the timing script."""
    page.add_init_script(TIMING_JS)
    if draw_page:
        page.goto(url + "/Draw")
        ensure_model(page, page.locator("canvas.upper-canvas"))
    else:
        page.goto(url)
    page.get_by_text("Draw a digit from 0 to 9").wait_for()
    page.wait_for_timeout(1000)


def timed_stroke(page, points) -> tuple[float, float]:
    """Draw `points`, then time mouse-up -> prediction: (ms in the page, ms as Playwright sees
    it); then clear the canvas."""
    pred = page.locator("#predicted-digit")
    stroke(page, points, release=False)
    t0 = time.perf_counter()
    page.mouse.up()
    pred.wait_for(timeout=30_000)
    seen = 1000 * (time.perf_counter() - t0)
    page.wait_for_function("() => window.__shown > 0", timeout=10_000)
    in_page = page.evaluate("() => window.__shown - window.__up")
    page.get_by_role("button", name="Clear").click()
    pred.wait_for(state="detached", timeout=30_000)
    page.wait_for_timeout(500)
    return in_page, seen


def stroke_latency(browser, url: str, strokes: int) -> dict:
    """Strokes alternated between the Draw page at `url` and a bare canvas app, so both see
    the same machine; each one's milliseconds in the page and as Playwright sees them."""
    bare_port = free_port()
    bare_proc = start_bare(BARE_CANVAS_APP, bare_port)
    out = {name: {"in_page_ms": [], "playwright_ms": []} for name in ("draw_page", "bare_canvas")}
    try:
        wait_healthy(f"http://127.0.0.1:{bare_port}", bare_proc)
        pages = {"draw_page": browser.new_page(viewport=VIEWPORT),
                 "bare_canvas": browser.new_page(viewport=VIEWPORT)}
        open_canvas(pages["draw_page"], url)
        open_canvas(pages["bare_canvas"], f"http://127.0.0.1:{bare_port}", draw_page=False)
        shapes = list(DIGITS.values())
        for i in range(strokes):
            for name, page in pages.items():
                page.bring_to_front()
                in_page, seen = timed_stroke(page, shapes[i % len(shapes)])
                out[name]["in_page_ms"].append(in_page)
                out[name]["playwright_ms"].append(seen)
        for page in pages.values():
            page.close()
    finally:
        bare_proc.terminate()
        bare_proc.wait(timeout=10)
    return out


def app_training(page, url: str) -> float:
    """Train the seed preset on the Train page, watching it live; its training seconds."""
    page.goto(url + "/Train")
    page.get_by_text("Hyperparameters").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"Finished in [\d.]+ s")).wait_for(timeout=600_000)
    # The session's run record holds the epoch seconds; the page shows their total.
    text = page.get_by_text(re.compile(r"Epoch seconds: ")).first.inner_text()
    return sum(float(s) for s in re.findall(r"[\d.]+", text.split(":", 1)[1]))


def cli_training(blas_threads: int) -> float:
    env = dict(os.environ)
    if blas_threads:  # the app trains on one BLAS thread (ui.state.store)
        env["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    out = subprocess.run([sys.executable, "-m", "mnistnet", "train", "--preset", "seed", "--json",
                          "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return sum(json.loads(out.stdout)["epoch_seconds"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cold", type=int, default=3, help="cold starts to measure")
    ap.add_argument("--strokes", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="app/CLI training rounds")
    ap.add_argument("--parts", default="cold,strokes,train", help="which figures to measure")
    ap.add_argument("--cli-blas-threads", type=int, default=1,
                    help="OPENBLAS_NUM_THREADS for the CLI (0: its default); the app uses 1")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    result = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        if "cold" in parts:
            warm = browser.new_page()  # the browser's own start is not the app's
            warm.goto("about:blank")
            warm.close()
            # The first start after install (a fresh clone): no compiled bytecode of the project's
            # own modules yet (pip compiled the packages' at install). Measured once, apart.
            removed = clear_bytecode()
            first = cold_start(browser)
            first_bare = cold_start(browser, bare=True)
            result["first_after_install_s"] = {"app": first, "bare_streamlit": first_bare,
                                               "bytecode_folders_removed": removed}
            print(f"first start after install (the project's {removed} __pycache__ folders removed): first render "
                  f"{first['first_render']:.2f} s, whole home page {first['whole_page']:.2f} s; a one-line "
                  f"Streamlit app {first_bare['first_render']:.2f} s", flush=True)
            cold, bare = [], []
            for _ in range(args.cold):  # alternated, so both see the same machine
                cold.append(cold_start(browser))
                bare.append(cold_start(browser, bare=True))
            med = {k: statistics.median(c[k] for c in cold) for k in cold[0]}
            result["cold_start_s"] = {"median": med, "runs": cold, "bare_streamlit_runs": bare,
                                      "bare_streamlit_median_first_render":
                                          statistics.median(c["first_render"] for c in bare)}
            print(f"cold start to first render: median {med['first_render']:.2f} s "
                  f"{[round(c['first_render'], 2) for c in cold]} (server up {med['healthy']:.2f} s, "
                  f"page loaded {med['loaded']:.2f} s, whole home page {med['whole_page']:.2f} s); "
                  f"a one-line Streamlit app: median "
                  f"{result['cold_start_s']['bare_streamlit_median_first_render']:.2f} s", flush=True)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_app(port, subprocess.DEVNULL)
        try:
            wait_healthy(url, proc)
            page = browser.new_page(viewport=VIEWPORT)
            if "strokes" in parts:
                result["stroke_to_prediction_ms"] = lat = stroke_latency(browser, url, args.strokes)
                for name, r in lat.items():
                    for how in ("in_page_ms", "playwright_ms"):
                        print(f"mouse-up to prediction, {name.replace('_', ' ')}, {how[:-3].replace('_', ' ')}: "
                              f"median {statistics.median(r[how]):.0f} ms  {[round(t) for t in r[how]]}",
                              flush=True)
            app_s, cli_s = [], []
            for r in range(args.rounds if "train" in parts else 0):
                page.close()
                page = browser.new_page(viewport=VIEWPORT)  # a new session: no run in it yet
                app_s.append(app_training(page, url))
                cli_s.append(cli_training(args.cli_blas_threads))
                print(f"round {r + 1}: app {app_s[-1]:.1f} s, CLI {cli_s[-1]:.1f} s", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        browser.close()
    if app_s:
        ratio = statistics.median(app_s) / statistics.median(cli_s)
        result["training_s"] = {"app": app_s, "cli": cli_s, "ratio_of_medians": ratio,
                                "cli_blas_threads": args.cli_blas_threads or "default"}
        print(f"training, seed preset: app median {statistics.median(app_s):.1f} s, CLI median "
              f"{statistics.median(cli_s):.1f} s, ratio {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
