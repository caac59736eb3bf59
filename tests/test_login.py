"""Signing in, end to end: `streamlit run app.py` with Streamlit's own login turned on against
a local OpenID Connect provider (oidc-provider-mock, a Flask app run by its CLI), driven in
Debian's Chromium. The signed-in account owns the work, not the browser: an upload made as
alice in one browser is alice's in another, not bob's, and not the anonymous visitor's after
signing out.

The lab gets its own SQLite store and a secrets file in a temporary folder, passed with
`--secrets.files`: nothing is written to the repository's .streamlit/. Never skipped (see
test_browser.py); screenshots go to artifacts/screenshots/login-*.png.
"""

import importlib.util
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import test_browser
from PIL import Image
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from test_browser import (
    ROOT,
    STEP_MS,
    VIEWPORT,
    assert_clean_log,
    assert_no_exception,
    free_port,
    settled,
    shot,
    stop_server,
    wait_healthy,
)

from mnistnet import load_mnist

pytestmark = pytest.mark.browser

USERS = {"alice": "alice@example.org", "bob": "bob@example.org"}  # sub -> email
REPO_SECRETS = ROOT / ".streamlit" / "secrets.toml"
FIRST_DATA_MS = 180_000  # the Data page's first run imports MNIST into the fresh store
EXCEPTION_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception)\b")  # KeyError, StreamlitAuthError, ...


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    """oidc-provider-mock on 127.0.0.1: any client id and secret; alice and bob known with
    their emails (an unknown sub would get its sub as email)."""
    assert importlib.util.find_spec("oidc_provider_mock"), (
        "oidc-provider-mock is missing: .venv/bin/pip install -r requirements-dev.txt")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    for sub, email in USERS.items():
        cmd += ["--user-claims", json.dumps({"sub": sub, "email": email})]
    log_path = tmp_path_factory.mktemp("oidc") / "provider.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, NO_COLOR="1"))
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                try:
                    with urllib.request.urlopen(url + "/.well-known/openid-configuration", timeout=2) as r:
                        assert json.load(r)["issuer"] == url
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"the OIDC provider did not answer at {url}"
                    time.sleep(0.2)
            yield url
        finally:
            stop_server(proc)
    provider_log = log_path.read_text()
    assert "Traceback" not in provider_log, provider_log[-3000:]


@pytest.fixture(scope="module")
def lab(provider, tmp_path_factory):
    """The lab with login turned on: its secrets file and store in a temporary folder."""
    had_repo_secrets = REPO_SECRETS.exists()
    folder = tmp_path_factory.mktemp("lab")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "{url}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "mnistnet-test"\n'
        f'client_secret = "{secrets.token_hex(16)}"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n')
    # test_browser.start_app's command, plus the secrets file (which replaces the default
    # paths, so a developer's own .streamlit/secrets.toml plays no part) and a store of its own
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port),
           "--browser.gatherUsageStats", "false", "--secrets.files", str(secrets_file)]
    env = dict(os.environ, MNISTNET_DB_URL=f"sqlite:///{folder / 'lab.sqlite3'}")
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_healthy(url, proc)
            yield url
        finally:
            stop_server(proc)
    assert REPO_SECRETS.exists() == had_repo_secrets, f"{REPO_SECRETS} was created or removed"
    assert_clean_log(log_path.read_text())


browser = test_browser.browser  # test_browser.py's fixture, by name


@pytest.fixture
def new_browser(browser, request):
    """-> a function giving a page in a fresh context: another browser, with its own cookies
    and localStorage. On failure every page is saved as a screenshot."""
    contexts = []

    def make() -> Page:
        contexts.append(browser.new_context(viewport=VIEWPORT))
        return contexts[-1].new_page()
    yield make
    for i, context in enumerate(contexts):
        if getattr(request.node, "failed", False):
            for j, p in enumerate(context.pages):
                shot(p, f"FAILED-{request.node.name}-{i}-{j}")
        context.close()


@pytest.fixture(scope="module")
def seven_png(tmp_path_factory) -> Path:
    """The first MNIST test image (a 7), white on black, scaled up to 112x112."""
    test = load_mnist().test
    assert test.labels[0] == 7
    path = tmp_path_factory.mktemp("digits") / "seven.png"
    Image.fromarray(test.images[0]).resize((112, 112), Image.Resampling.BILINEAR).save(path)
    return path


# -- steps --------------------------------------------------------------------------------

def check(page: Page) -> None:
    """No exception on the page: Streamlit's exception box, a traceback, an exception's name."""
    assert_no_exception(page)
    body = page.locator("body").inner_text()
    assert not EXCEPTION_NAME.search(body), body[:2000]


def sidebar(page: Page):
    return page.get_by_test_id("stSidebar")


def open_data(page: Page, lab: str, timeout: int = STEP_MS) -> None:
    page.goto(lab + "/Data")
    page.get_by_text("Upload your own digits").wait_for(timeout=timeout)


def expect_yours(page: Page, n: int) -> None:
    """The Data page's "upload (yours)" row totals n. The table is a canvas; Streamlit keeps
    its cells in a hidden table for screen readers, which is read here."""
    row = page.get_by_test_id("stDataFrame").locator("tr").filter(has_text="upload (yours)")
    expect(row.locator("td").last).to_have_text(str(n), timeout=STEP_MS)


def sign_in(page: Page, lab: str, sub: str) -> None:
    """Sign in from the sidebar as `sub` on the provider's form; back on the home page, signed in."""
    sidebar(page).get_by_role("button", name="Sign in").click()
    form = page.get_by_placeholder("sub")
    form.wait_for(timeout=STEP_MS)
    form.fill(sub)
    if sub == "alice":
        shot(page, "login-provider-form")
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url(re.compile(re.escape(lab) + "/?$"), timeout=STEP_MS)
    expect(sidebar(page).get_by_text(f"Signed in as {USERS[sub]}.")).to_be_visible()
    expect(sidebar(page).get_by_role("button", name="Sign out")).to_be_visible()
    check(page)


def visitor_key(page: Page) -> str | None:
    """The anonymous key this browser keeps (ui/identity.js)."""
    return page.evaluate("() => window.localStorage.getItem('mnistnet.visitor')")


def pick(page: Page, box, option: str) -> None:
    """Choose `option` in the selectbox `box`. A rerun that lands as the list opens closes it
    again, so: wait for the page to be idle, open, and try again if no list shows."""
    for _ in range(5):
        settled(page)
        box.click()
        item = page.get_by_role("option", name=option, exact=True)
        try:
            item.wait_for(timeout=3_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        item.click()
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=STEP_MS)
        return
    raise AssertionError(f"the list with {option!r} did not open")


def upload(page: Page, path: Path, digit: int) -> None:
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(path))
    label = page.get_by_test_id("stSelectbox").filter(has=page.get_by_placeholder("which digit?"))
    label.wait_for(timeout=STEP_MS)
    pick(page, label, str(digit))
    page.get_by_role("button", name="Add to the store").click()
    expect(page.get_by_text("Stored 1 digit(s)")).to_be_visible(timeout=STEP_MS)


# -- the test -----------------------------------------------------------------------------

def test_the_signed_in_account_owns_the_work_in_any_browser(lab, new_browser, seven_png):
    # 1. Not signed in: an anonymous visitor of this browser, offered "Sign in".
    first = new_browser()
    open_data(first, lab, timeout=FIRST_DATA_MS)
    expect(sidebar(first).get_by_role("button", name="Sign in")).to_be_visible()
    expect(sidebar(first).get_by_text("Your work is kept for this browser")).to_be_visible()
    anonymous = visitor_key(first)
    assert re.fullmatch(r"[0-9a-f]{32}", anonymous or ""), anonymous
    expect_yours(first, 0)
    check(first)
    shot(first, "login-anonymous")

    # 2. Sign in as alice on the provider's form, and come back signed in.
    sign_in(first, lab, "alice")
    assert {"_streamlit_user", "_streamlit_user_tokens"} <= {c["name"] for c in first.context.cookies()}
    shot(first, "login-alice")

    # 3. Alice uploads a 7: hers in this browser...
    open_data(first, lab)
    expect(sidebar(first).get_by_text("Signed in as alice@example.org.")).to_be_visible()
    expect_yours(first, 0)
    upload(first, seven_png, 7)
    check(first)
    open_data(first, lab)
    expect_yours(first, 1)
    shot(first, "login-alice-upload")

    # ... and in another browser (its own anonymous key) once she signs in there ...
    second = new_browser()
    open_data(second, lab)
    assert visitor_key(second) not in (None, anonymous)
    expect_yours(second, 0)
    sign_in(second, lab, "alice")
    open_data(second, lab)
    expect_yours(second, 1)
    pick(second, second.get_by_test_id("stSelectbox").filter(has_text="Source"), "upload (yours)")
    pick(second, second.get_by_test_id("stSelectbox").filter(has_text="Digit"), "7")
    expect(second.get_by_text("The first 1 of 1.")).to_be_visible(timeout=STEP_MS)
    check(second)
    shot(second, "login-alice-second-browser")

    # ... but not bob's.
    third = new_browser()
    open_data(third, lab)
    sign_in(third, lab, "bob")
    open_data(third, lab)
    expect(sidebar(third).get_by_text("Signed in as bob@example.org.")).to_be_visible()
    expect_yours(third, 0)
    expect(third.get_by_text(re.compile(r"Other visitors have kept 1 digits? of their own"))).to_be_visible()
    check(third)
    shot(third, "login-bob")

    # 4. Signing out (through the provider's end-session page) returns the first browser to
    # its anonymous visitor, who owns none of alice's work.
    open_data(first, lab)
    sidebar(first).get_by_role("button", name="Sign out").click()
    end = first.get_by_role("button", name="End session")
    end.wait_for(timeout=STEP_MS)
    end.click()
    first.wait_for_url(re.compile(re.escape(lab) + "/?$"), timeout=STEP_MS)
    expect(sidebar(first).get_by_role("button", name="Sign in")).to_be_visible()
    assert "_streamlit_user" not in {c["name"] for c in first.context.cookies()}
    open_data(first, lab)
    expect(sidebar(first).get_by_role("button", name="Sign in")).to_be_visible()
    assert visitor_key(first) == anonymous
    expect_yours(first, 0)
    expect(first.get_by_text(re.compile(r"Other visitors have kept 1 digits? of their own"))).to_be_visible()
    check(first)
    shot(first, "login-signed-out")
