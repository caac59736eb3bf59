"""The Inside page in a real Chromium: digits drawn with the mouse on the pad are read in the
browser, and the server, handed the same drawing by "Keep it", reads the same digit; drawing
sends nothing over the websocket; two visitors at once; a unit opened; the epoch slider; and
a convolutional network (uploaded as a model file) with its feature maps, kernels and pooling,
on a desktop and on a phone.

Reuses tests/test_browser.py's server, browser and page fixtures (one `streamlit run app.py`
on a free port and the session's temporary SQLite store) and its helpers. Screenshots go to
artifacts/inside/ (the MLP) and artifacts/screenshots/ (the CNN).
"""

import math
import re
from pathlib import Path

import pytest
import test_browser
from playwright.sync_api import Page, expect
from test_browser import DIGITS, STEP_MS, VIEWPORT, assert_no_exception, ensure_model, sidebar_link, touch_stroke

from mnistnet import TrainConfig, load_mnist, load_model, preprocess_drawing, save_model, train
from mnistnet.data import FASHION_CLASSES, MNIST, Split, load_fashion_mnist
from mnistnet.net import Net
from ui import inside

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "artifacts" / "inside"
pytestmark = pytest.mark.browser
# test_browser.py's fixtures, by name: its server (with the server-log check), browser and page.
app_url, browser, page = test_browser.app_url, test_browser.browser, test_browser.page


class Wire:
    """Bytes the server sends this page over its websocket (Streamlit's one connection)."""

    def __init__(self, page: Page):
        self.received = 0
        self.frames = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        self.frames += 1
        self.received += len(payload)

    def settle(self, page: Page, quiet_ms: int = 1500, timeout_ms: int = STEP_MS) -> None:
        """Wait until nothing has arrived for `quiet_ms` (a rerun's last messages trail its page)."""
        waited, last, quiet = 0, self.frames, 0
        while quiet < quiet_ms:
            assert waited < timeout_ms, "the websocket never went quiet"
            page.wait_for_timeout(100)
            waited += 100
            quiet = quiet + 100 if self.frames == last else 0
            last = self.frames


def open_inside(page: Page, url: str) -> None:
    page.goto(url + "/Inside")
    ensure_model(page, page.locator("canvas.pad"))
    # The network has arrived once the pad invites drawing (not "Loading the network...").
    expect(page.locator(".reading")).to_contain_text("Draw a digit", timeout=STEP_MS)


def pad_stroke(page: Page, points, release: bool = True, step: float = 6) -> int:
    """One stroke on the pad through `points` (pad pixels 0..280); returns the mouse moves made."""
    box = page.locator("canvas.pad").bounding_box()
    x0, y0 = box["x"], box["y"]
    page.mouse.move(x0 + points[0][0], y0 + points[0][1])
    page.mouse.down()
    moves = 0
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        n = max(2, int(math.hypot(xb - xa, yb - ya) / step))
        for k in range(1, n + 1):
            page.mouse.move(x0 + xa + (xb - xa) * k / n, y0 + ya + (yb - ya) * k / n)
            moves += 1
    if release:
        page.mouse.up()
    return moves


def shown_digit(page: Page) -> str:
    digit = page.locator("#inside-digit")
    expect(digit).to_have_text(re.compile(r"^\d$"), timeout=STEP_MS)
    return digit.inner_text()


def keep_and_compare(page: Page) -> tuple[str, str]:
    """Keep the drawing; -> (the digit the page showed, the server's reading of the same PNG)."""
    shown = shown_digit(page)
    page.locator("button.keep-it").click()
    server = page.locator("#inside-server-digit")
    expect(server).to_have_count(1, timeout=STEP_MS)
    expect(page.locator("#inside-shown-digit")).to_have_text(shown)
    expect(page.locator("button.keep-it")).to_have_text(re.compile(r"^Kept as a \d$"), timeout=STEP_MS)
    return shown, server.inner_text()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_drawn_digits_read_in_the_browser_match_the_server(page, app_url):
    wire = Wire(page)
    open_inside(page, app_url)
    loaded = wire.received
    assert loaded > 4 * 784 * 10, f"only {loaded} bytes reached the page: the weights are missing"
    for digit, points in DIGITS.items():
        page.locator("button.clear").click()
        expect(page.locator("#inside-digit")).to_have_count(0)
        wire.settle(page)
        before = wire.frames
        pad_stroke(page, points)
        assert shown_digit(page) == digit, f"the page read {shown_digit(page)} for a drawn {digit}"
        assert wire.frames == before, "drawing sent something over the websocket"
        shown, server = keep_and_compare(page)
        assert shown == server == digit, f"drew {digit}: the page showed {shown}, the server read {server}"
        assert_no_exception(page)


def test_undo_clear_and_pen_width(page, app_url):
    open_inside(page, app_url)
    pad_stroke(page, DIGITS["1"])
    assert shown_digit(page) == "1"
    pad_stroke(page, [(95, 60), (180, 60)])  # a bar across the top: no longer a clean 1
    expect(page.locator("#inside-digit")).not_to_have_text("1")
    page.locator("button.undo").click()
    # Undo brings back exactly the first stroke's reading (at the next animation frame: wait for it).
    expect(page.locator("#inside-digit")).to_have_text("1")
    page.locator("button.clear").click()
    expect(page.locator("#inside-digit")).to_have_count(0)
    expect(page.locator("button.keep-it")).to_be_disabled()
    page.locator("input.pen").fill("40")
    pad_stroke(page, DIGITS["0"])
    assert shown_digit(page) == "0"


def test_two_visitors_draw_at_once_and_keep_their_own_digits(browser, app_url):
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(2)]
    try:
        pages = [c.new_page() for c in contexts]
        for p in pages:
            open_inside(p, app_url)
        pad_stroke(pages[0], DIGITS["7"])
        pad_stroke(pages[1], DIGITS["4"])
        assert shown_digit(pages[0]) == "7" and shown_digit(pages[1]) == "4"
        assert keep_and_compare(pages[0]) == ("7", "7")
        # The kept 7 is one of the first visitor's digits on the Draw page, not the second's.
        for p, has_digits in zip(pages, (True, False)):
            sidebar_link(p, "Draw").click()
            expect(p.get_by_text("Fine-tune on my digits").first).to_be_visible(timeout=STEP_MS)
            mine = p.get_by_text(re.compile(r"You have \d+ labelled digits? of your own"))
            if has_digits:
                expect(mine).to_contain_text("7: ", timeout=STEP_MS)
            else:
                expect(p.get_by_text("Keep or correct a few drawings above")).to_be_visible(timeout=STEP_MS)
        # Back on Inside, the pad still holds the first visitor's drawing.
        sidebar_link(pages[1], "Inside").click()
        assert shown_digit(pages[1]) == "4"
    finally:
        for c in contexts:
            c.close()


def test_a_unit_opens_and_the_epoch_slider_replays_training(page, app_url):
    open_inside(page, app_url)
    pad_stroke(page, DIGITS["7"])
    assert shown_digit(page) == "7"
    grid = page.locator("canvas.grid").first
    box = grid.bounding_box()
    grid.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.3})
    expect(page.locator(".unit-title")).to_contain_text(re.compile(r"Hidden layer 1, unit \d+: "))
    expect(page.locator(".incoming-caption")).to_contain_text("one per pixel")
    deeper = page.locator("canvas.grid").nth(1)
    deeper.click(position={"x": 3, "y": 3})
    expect(page.locator(".unit-title")).to_contain_text("Hidden layer 2, unit 0: ")
    expect(page.locator(".incoming-caption")).to_contain_text("incoming weights from hidden layer 1")
    slider = page.locator("input.epoch")
    expect(slider).to_be_enabled(timeout=STEP_MS)  # the lab's model is trained here, with snapshots
    n = int(slider.get_attribute("max"))
    assert n >= 3, f"expected the initial, early and per-epoch snapshots, got {n}"
    trained = page.locator(".conf").inner_text()
    slider.fill("0")
    expect(page.locator(".epoch-label")).to_contain_text("initial random weights")
    # Untrained, the network is far from sure of anything: its top probability drops.
    expect(page.locator(".conf")).not_to_have_text(trained)
    assert float(page.locator(".conf").inner_text().rstrip("%")) < float(trained.rstrip("%"))
    slider.fill(str(n))
    expect(page.locator(".epoch-label")).to_contain_text("now, the current model")
    expect(page.locator(".conf")).to_have_text(trained)
    assert shown_digit(page) == "7"
    assert_no_exception(page)


PHONE = {"width": 390, "height": 844}


def sideways(page: Page) -> int:
    """How many CSS pixels the page is wider than the screen (0: it does not scroll sideways)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_a_phone_draws_with_a_finger_and_nothing_runs_off_the_screen(browser, app_url):
    ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=3)
    try:
        page = ctx.new_page()
        open_inside(page, app_url)
        touch_stroke(page, page.locator("canvas.pad"), DIGITS["7"])
        assert shown_digit(page) == "7"
        assert sideways(page) == 0, "the Inside page is wider than a phone's screen"
        gallery = page.locator("canvas.gallery")
        box = gallery.bounding_box()
        assert box["width"] <= PHONE["width"]
        gallery.click(position={"x": 5, "y": 5})  # the first tile: the unit this 7 drives hardest
        expect(page.locator(".unit-title")).to_contain_text(re.compile(r"Hidden layer 1, unit \d+: "))
        page.locator("canvas.grid").nth(1).click(position={"x": 3, "y": 3})  # bars and contributions
        expect(page.locator(".unit-title")).to_contain_text("Hidden layer 2, unit 0: ")
        assert sideways(page) == 0, "a unit's charts are wider than a phone's screen"
        shot(page, "phone-inside-unit")
        assert_no_exception(page)
    finally:
        ctx.close()


def test_the_browser_keeps_the_weights_and_fetches_snapshots_only_for_the_slider(page, app_url):
    """First visit: the model's bytes, not its snapshots. Moving the slider fetches them once.
    A reload (a new session) gets neither again: the browser keeps both by model id."""
    wire = Wire(page)
    open_inside(page, app_url)
    wire.settle(page)
    first = wire.received
    assert first > 4 * 784 * 256, f"only {first} bytes: the weights did not come"
    slider = page.locator("input.epoch")
    expect(slider).to_be_enabled()
    n = int(slider.get_attribute("max"))
    slider.fill("0")
    expect(page.locator(".epoch-label")).to_contain_text("initial random weights", timeout=STEP_MS)
    wire.settle(page)
    snapshots = wire.received - first
    assert snapshots > 2 * 784 * 256 * (n - 1), f"only {snapshots} bytes for {n} snapshots"
    page.reload()
    wire.received = 0
    open_inside(page, app_url)
    pad_stroke(page, DIGITS["7"])
    assert shown_digit(page) == "7"
    slider.fill("0")
    expect(page.locator(".epoch-label")).to_contain_text("initial random weights", timeout=STEP_MS)
    wire.settle(page)
    print(f"Inside: first visit {first:,} bytes, snapshots {snapshots:,} bytes, a second visit {wire.received:,}")
    assert wire.received < 200_000, f"a second visit took {wire.received:,} bytes"
    assert_no_exception(page)


# -- a convolutional network ------------------------------------------------------------------

CNN = "conv 8x5 - pool - conv 16x5 - pool - dense 64"
CNN_MAPS = [("conv", "Conv layer 1", 8, "24x24"), ("pool", "Pool layer 1", 8, "12x12"),
            ("conv", "Conv layer 2", 16, "8x8"), ("pool", "Pool layer 2", 16, "4x4")]


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory):
    """CNN trained 2 epochs on 10,000 real MNIST digits turned, scaled, slanted and moved (as
    the lab's presets do, so it reads drawings), saved as a model file."""
    d = load_mnist()
    data = MNIST(Split(d.train.images[:10000], d.train.labels[:10000]), d.val, d.test)
    net = Net(CNN, seed=0)
    train(net, data, TrainConfig(batch_size=64, learning_rate=0.05, epochs=2, momentum=0.9, lr_schedule="cosine",
                                 rotate_degrees=8.0, scale=0.08, shear_degrees=8.0, translate_pixels=1.5))
    return save_model(net, tmp_path_factory.mktemp("cnn") / "cnn.npz")


def use_model_file(page: Page, url: str, path: Path) -> None:
    """Upload a model file on the Runs page, as a visitor does: it becomes their current model."""
    page.goto(url + "/Runs")
    box = page.get_by_test_id("stFileUploader").filter(has_text="Load a model file saved by mnistnet")
    box.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(path))
    expect(page.get_by_text(f"{path.name} is now your current model")).to_be_visible(timeout=2 * STEP_MS)


def percent(text: str) -> float:
    return float(re.search(r"(\d+\.\d)%", text)[1])


def open_channel(page: Page, layer: str, channel: int) -> None:
    """Click `channel` of the feature-map grid of `layer` (8 tiles to a row, scaled to the screen)."""
    grid = page.locator(f"canvas.maps[data-layer='{layer}']")
    box, width = grid.bounding_box(), int(grid.get_attribute("width"))
    channels = int(grid.get_attribute("data-channels"))
    cols, rows = min(channels, 8), -(-channels // 8)
    height = int(grid.get_attribute("height"))
    tile_w, tile_h = (width + 4) / cols, (height + 4) / rows  # a tile and its gap, canvas pixels
    k = box["width"] / width
    x, y = ((channel % cols) + 0.4) * tile_w * k, ((channel // cols) + 0.4) * tile_h * k
    grid.click(position={"x": x, "y": y})
    expect(page.locator(".unit-title")).to_contain_text(f"{layer}, channel {channel}: ")


def test_a_cnn_reads_drawings_as_python_and_shows_its_feature_maps_and_kernels(browser, app_url, cnn_file):
    ctx = browser.new_context(viewport=VIEWPORT)
    try:
        page = ctx.new_page()
        use_model_file(page, app_url, cnn_file)
        open_inside(page, app_url)
        expect(page.get_by_text("each convolution's and pooling's feature maps")).to_be_visible()
        # One grid per conv and pool layer, with its channels; one strip for the dense layer.
        grids = page.locator("canvas.maps")
        expect(grids).to_have_count(len(CNN_MAPS))
        for k, (kind, layer, channels, size) in enumerate(CNN_MAPS):
            g = grids.nth(k)
            assert (g.get_attribute("data-kind"), g.get_attribute("data-layer")) == (kind, layer)
            assert (int(g.get_attribute("data-channels")), g.get_attribute("data-size")) == (channels, size)
        expect(page.locator("canvas.grid")).to_have_count(1)
        assert page.locator("canvas.grid").get_attribute("data-units") == "64"
        expect(page.locator("canvas.gallery")).to_be_hidden()  # its first layer is no dense layer over pixels
        expect(page.locator(".epoch-label")).to_contain_text("snapshots are kept for dense ReLU networks only")
        for digit, points in DIGITS.items():
            page.locator("button.clear").click()
            expect(page.locator("#inside-digit")).to_have_count(0)
            pad_stroke(page, points)
            assert shown_digit(page) == digit, f"the page read {shown_digit(page)} for a drawn {digit}"
            expect(page.locator(".layer .caption").first).to_contain_text(re.compile(r"Conv layer 1: 8 channels of "
                                                                                     r"24 x 24, .*\d+ active"))
            page_percent = percent(page.locator(".conf").inner_text())
            shown, server = keep_and_compare(page)
            assert shown == server == digit, f"drew {digit}: the page showed {shown}, the server read {server}"
            server_percent = percent(page.locator("#inside-server").inner_text())
            assert abs(page_percent - server_percent) <= 0.1, (digit, page_percent, server_percent)
            assert_no_exception(page)
        # The first conv's channel: one 5x5 kernel over the input; a later one: one per input channel.
        open_channel(page, "Conv layer 1", 3)
        expect(page.locator(".kernels .kernel")).to_have_count(1)
        expect(page.locator(".kernels-caption")).to_contain_text("one 5 x 5 kernel over the input")
        open_channel(page, "Conv layer 2", 5)
        expect(page.locator(".kernels .kernel")).to_have_count(8)
        expect(page.locator(".kernels-caption")).to_contain_text("8 kernels of 5 x 5, one per channel of pool layer 1")
        caption = page.locator(".kernels-caption").inner_text()
        feeders = [int(c) for c in re.findall(r"(\d+) \(\d+%\)", caption.split("Fed most by")[1])]
        tiles = [int(t.split()[1]) for t in page.locator(".kernels .kernel figcaption").all_inner_texts()]
        assert sorted(tiles) == list(range(8)) and tiles[:3] == feeders, (tiles, caption)
        expect(page.locator(".channel-map")).to_be_visible()
        expect(page.locator(".pool-before")).to_be_hidden()
        test_browser.shot(page, "inside-cnn-conv-channel")
        open_channel(page, "Pool layer 2", 5)  # pooling: before and after, and the kernels it pools
        expect(page.locator(".before-caption")).to_contain_text("Before: conv layer 2, channel 5 (8 x 8)")
        expect(page.locator(".now-caption")).to_contain_text("After 2 x 2 max pooling (4 x 4)")
        expect(page.locator(".kernels .kernel")).to_have_count(8)
        test_browser.shot(page, "inside-cnn-pool-channel")
        page.locator("canvas.grid").click(position={"x": 3, "y": 3})  # the dense layer's unit 0
        expect(page.locator(".unit-title")).to_contain_text("Dense layer 1, unit 0: ")
        expect(page.locator(".incoming-caption")).to_contain_text("one small image per channel of pool layer 2")
        expect(page.locator(".incoming-tiles .weights")).to_have_count(16)
        test_browser.shot(page, "inside-cnn-dense-unit")
        assert_no_exception(page)
        phone_with_the_same_visitor(browser, ctx, app_url)
    finally:
        ctx.close()


def phone_with_the_same_visitor(browser, desktop, app_url) -> None:
    """The same visitor (their browser's key) on a phone: a finger-drawn 7, a channel opened,
    nothing wider than the screen."""
    ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=3,
                              storage_state=desktop.storage_state())
    try:
        page = ctx.new_page()
        open_inside(page, app_url)
        expect(page.locator("canvas.maps")).to_have_count(len(CNN_MAPS))
        touch_stroke(page, page.locator("canvas.pad"), DIGITS["7"])
        assert shown_digit(page) == "7"
        assert sideways(page) == 0, "the Inside page of a CNN is wider than a phone's screen"
        for g in page.locator("canvas.maps").all():
            assert g.bounding_box()["width"] <= PHONE["width"]
        open_channel(page, "Conv layer 2", 9)  # a tap, scaled from the shrunk grid to its tiles
        expect(page.locator(".kernels .kernel")).to_have_count(8)
        assert sideways(page) == 0, "a channel's kernels are wider than a phone's screen"
        open_channel(page, "Pool layer 1", 2)
        expect(page.locator(".pool-before")).to_be_visible()
        assert sideways(page) == 0, "pooling's pictures are wider than a phone's screen"
        test_browser.shot(page, "phone-inside-cnn")
        assert_no_exception(page)
    finally:
        ctx.close()


# -- a model of another data set ---------------------------------------------------------------

TROUSERS = [(95, 45), (185, 45), (190, 240), (155, 240), (140, 110), (125, 240), (90, 240), (95, 45)]


@pytest.fixture(scope="module")
def fashion_file(tmp_path_factory):
    """A small CNN trained one epoch on 3,000 Fashion-MNIST images, saved as a model file."""
    d = load_fashion_mnist()
    data = MNIST(Split(d.train.images[:3000], d.train.labels[:3000]), d.val, d.test)
    net = Net("conv 4x5 - pool - dense 32", seed=0)
    train(net, data, TrainConfig(epochs=1, learning_rate=0.05, momentum=0.9, dataset="fashion"))
    return save_model(net, tmp_path_factory.mktemp("fashion") / "fashion.npz")


def test_a_fashion_model_names_its_classes_and_keeps_nothing(browser, app_url, fashion_file):
    """Its answer is a class name, the one Python reads from the pad's own PNG; no "Keep it"
    (drawings are kept as digits, for MNIST models only)."""
    ctx = browser.new_context(viewport=VIEWPORT)
    try:
        page = ctx.new_page()
        use_model_file(page, app_url, fashion_file)
        page.goto(app_url + "/Inside")
        expect(page.get_by_text("This model reads Fashion-MNIST")).to_be_visible(timeout=STEP_MS)
        expect(page.locator(".reading")).to_contain_text("Draw one of its ten classes", timeout=STEP_MS)
        expect(page.locator(".keep")).to_be_hidden()
        expect(page.locator("canvas.maps")).to_have_count(2)  # conv and pool
        pad_stroke(page, TROUSERS)
        name = page.locator("#inside-class")
        expect(name).to_have_count(1, timeout=STEP_MS)
        expect(page.locator("#inside-digit")).to_have_count(0)
        png = page.locator("canvas.pad").evaluate("c => c.toDataURL('image/png')")  # what the pad shows
        probs = load_model(fashion_file).predict_proba(preprocess_drawing(inside.drawing_from_png(png))[None])[0]
        best = int(probs.argmax())
        expect(name).to_have_text(FASHION_CLASSES[best])
        assert abs(percent(page.locator(".conf").inner_text()) - 100 * probs[best]) <= 0.051
        expect(page.locator(".legend")).to_contain_text("1,000 Fashion-MNIST test images")
        test_browser.shot(page, "inside-fashion")
        assert_no_exception(page)
    finally:
        ctx.close()
