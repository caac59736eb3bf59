"""Six visitors start a run at once on one lab (two training workers): the runs queue, every
page says how many runs are ahead, a reload mid-queue still says so, all finish, and each
visitor sees exactly their own run as theirs. In a real Chromium, six browser contexts."""

import os
import re
import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect, sync_playwright
from test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    STEP_MS,
    VIEWPORT,
    assert_clean_log,
    free_port,
    set_number,
    shot,
    stop_server,
    wait_healthy,
)

from mnistnet.store import Store

pytestmark = pytest.mark.browser
VISITORS = 6
QUEUED = re.compile(r"Queued, (\d+ runs? ahead of you|next to start)")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("queue")
    port = free_port()
    env = {**os.environ, "MNISTNET_DB_URL": f"sqlite:///{folder}/lab.sqlite3"}
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc)
            yield url, env["MNISTNET_DB_URL"]
        finally:
            stop_server(proc, timeout=20)
    text = log_path.read_text()
    assert_clean_log(text)
    assert "ScriptRunContext" not in text, "the server log warns about training threads"


def test_six_visitors_start_at_once_queue_and_each_sees_only_their_own(lab):
    lab, db_url = lab  # the lab's address and its store
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(VISITORS)]
        pages = [c.new_page() for c in contexts]
        for page in pages:
            page.goto(lab + "/Train")
            page.get_by_text("Hyperparameters").wait_for(timeout=120_000)  # the first imports MNIST
            set_number(page, "Epochs", 4)  # the seed preset on 50,000 images: about 15 s a run
        for page in pages:  # as near "at once" as six people clicking
            page.get_by_role("button", name="Start training").click()
        # Two workers: four of the six runs wait, and their pages say how many are ahead. Six
        # Chromiums on two cores draw slowly: watch every page until one has said so.
        seen, deadline = set(), time.monotonic() + 180
        while not seen and time.monotonic() < deadline:
            seen = {i for i, page in enumerate(pages) if page.get_by_text(QUEUED).count()}
            time.sleep(0.5)
        assert seen, "no page said its run was queued"
        waiting = pages[max(seen)]
        shot(waiting, "queue-waiting")
        # A reload mid-queue: the same run, still waiting with its place (or started by now).
        waiting.reload(wait_until="domcontentloaded", timeout=120_000)
        expect(waiting.get_by_text(QUEUED).or_(waiting.get_by_text(re.compile("^(Training|Finished)"))).first
               ).to_be_visible(timeout=STEP_MS * 4)
        for page in pages:
            expect(page.get_by_text(re.compile(r"Finished in [\d.]+ s: test accuracy"))).to_be_visible(
                timeout=300_000)
            expect(page.get_by_text("This run's model is now your current model")).to_be_visible()
        shot(pages[0], "queue-finished")
        ids = []
        for page in pages:  # each visitor's page names their run
            heading = page.get_by_role("heading", name=re.compile(r"Your last run \(#\d+\)"))
            ids.append(int(re.search(r"#(\d+)", heading.inner_text()).group(1)))
        assert len(set(ids)) == VISITORS, ids
        rows = [Store(db_url).run(i) for i in ids]
        assert len({r["owner"] for r in rows}) == VISITORS  # six runs, six owners
        waited = sorted(r["running_at"] - r["started_at"] for r in rows)
        assert all(w > 3.0 for w in waited[2:]), waited  # four runs waited for a worker
        for k, page in enumerate(pages[:2]):  # one's own run is theirs; the next visitor's is read-only
            page.goto(f"{lab}/Runs?run={ids[k]}")
            expect(page.get_by_role("heading", name=re.compile(rf"^Run #{ids[k]}$"))).to_be_visible(timeout=STEP_MS)
            expect(page.get_by_role("button", name="Rename or delete")).to_be_visible()
            page.goto(f"{lab}/Runs?run={ids[k + 1]}")
            expect(page.get_by_text(f"Run #{ids[k + 1]} (someone else's: read-only)")).to_be_visible(timeout=STEP_MS)
            expect(page.get_by_role("button", name="Rename or delete")).to_have_count(0)
        for c in contexts:
            c.close()
        browser.close()
