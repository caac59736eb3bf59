"""The Inside page's figures, measured in Chromium on this machine against `streamlit run app.py`
on a fresh temporary store whose default model (the seed preset, 784-512-256-10) is trained here:

- frame cost: pointer move -> activations and probabilities painted, measured inside the page
  with performance.now() (ui/inside.js pushes to window.__mnistnetTiming from the first pointer
  handler of a frame to the end of the animation frame that painted; __mnistnetTimingFromEvent
  starts at the event's own timeStamp instead, so it includes the wait before the handler ran);
- bytes over the websocket: for one load of the page (the model and its snapshots) and while
  drawing strokes (Playwright's framereceived events);
- screenshots to artifacts/inside/: mid-drawing, a unit opened, the epoch slider at three epochs.

    .venv/bin/python bench/inside_frame.py [--moves 400]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from test_browser import CHROMIUM, CHROMIUM_ARGS, DIGITS, VIEWPORT, free_port, start_app, wait_healthy  # noqa: E402
from test_browser_inside import SHOTS, Wire, open_inside, pad_stroke, shown_digit  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def frame_costs(page, moves: int) -> dict:
    page.evaluate("() => { window.__mnistnetTiming = []; window.__mnistnetTimingFromEvent = []; }")
    made = 0
    shapes = list(DIGITS.values())
    while made < moves:
        page.locator("button.clear").click()
        made += pad_stroke(page, shapes[made // 100 % len(shapes)], step=3)
    page.wait_for_timeout(200)
    t = page.evaluate("() => window.__mnistnetTiming")
    te = page.evaluate("() => window.__mnistnetTimingFromEvent")
    summary = lambda v: {"frames": len(v), "median_ms": round(statistics.median(v), 2),  # noqa: E731
                         "p95_ms": round(percentile(v, 0.95), 2), "max_ms": round(max(v), 2)}
    return {"mouse_moves": made, "from_handler": summary(t), "from_event_timestamp": summary(te)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=400, help="mouse moves to time (about one frame each)")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="mnistnet-inside-bench-")
    os.environ["MNISTNET_DB_URL"] = f"sqlite:///{folder}/mnistnet.sqlite3"
    port, figures = free_port(), {}
    url = f"http://127.0.0.1:{port}"
    with open(Path(folder) / "server.log", "w") as log:
        proc = start_app(port, log)
        try:
            wait_healthy(url, proc)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                first = browser.new_page(viewport=VIEWPORT)
                open_inside(first, url)  # trains the seed preset once, if need be
                first.close()
                page = browser.new_page(viewport=VIEWPORT)
                wire = Wire(page)
                open_inside(page, url)
                expect(page.locator("input.epoch")).to_be_enabled(timeout=60_000)  # the snapshots too
                page.wait_for_timeout(1000)
                figures["bytes_per_page_load"] = wire.received
                figures["layer_sizes"] = page.evaluate(
                    "() => [...window.__mnistnetInside.models.values()].at(-1).header.sizes")
                figures["snapshots"] = int(page.locator("input.epoch").get_attribute("max"))
                wire.settle(page)
                before_b, before_f = wire.received, wire.frames
                figures["frame_cost"] = frame_costs(page, args.moves)
                figures["bytes_while_drawing"] = wire.received - before_b
                figures["frames_while_drawing"] = wire.frames - before_f
                screenshots(page)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


def tall_shot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main section, so the viewport grows to it."""
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]')?.scrollHeight || 0")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(size)


def screenshots(page) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("button.clear").click()
    pad_stroke(page, DIGITS["4"][:3], release=False)  # the 4's first two strokes, pen still down
    page.screenshot(path=str(SHOTS / "mid-drawing.png"))
    page.mouse.up()
    page.locator("button.clear").click()
    pad_stroke(page, DIGITS["7"])
    shown_digit(page)
    grid = page.locator("canvas.grid").first
    box = grid.bounding_box()
    grid.click(position={"x": box["width"] * 0.45, "y": box["height"] * 0.4})
    tall_shot(page, "unit-opened")
    n = int(page.locator("input.epoch").get_attribute("max"))
    for pos, name in ((0, "initial"), (1, "early"), (n - 1, "last-snapshot")):
        page.locator("input.epoch").fill(str(pos))
        expect(page.locator(".epoch-label")).not_to_contain_text("now, the current model")
        tall_shot(page, f"epoch-{name}")


if __name__ == "__main__":
    main()
