"""`serve`'s page in headless Chromium (Debian's, through Playwright; never `playwright
install`), at a desktop's 1280 x 800 and a phone's 390 x 844, without and with a token.

Screenshots go to $EDGE_CIFAR_SCREENSHOTS when set (to look at them), else to the test's
temporary folder."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import cv2
import pytest

from .support import SAMPLE_VIDEO, edge_cifar_process, wait_for_url

sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra is not installed")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
DESKTOP, PHONE = {"width": 1280, "height": 800}, {"width": 390, "height": 844}
TOKEN = "page-token-7f3a"
CAT = SAMPLE_VIDEO.parent / "images" / "0000_cat.png"
WAIT_MS = 30_000  # generous: a busy machine is slow, never wrong


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """The sample clip thirty times over (ten minutes at its 6 FPS): the page stays live while
    tested, however busy the machine (80 s ended a server in the middle of the token test on a
    loaded one); each test stops its own server."""
    capture = cv2.VideoCapture(str(SAMPLE_VIDEO))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    capture.release()
    height, width = frames[0].shape[:2]
    path = tmp_path_factory.mktemp("video") / "long.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 6.0, (width, height))
    for _ in range(30):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return path


def serving(video: Path, *args: object):
    process = edge_cifar_process("serve", "-d", video, "--port", 0, *args)
    return process, wait_for_url(process)


def stopped(process) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return stderr


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def screens(tmp_path_factory) -> Path:
    folder = os.environ.get("EDGE_CIFAR_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screens")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_live(page, decisions: int = 20) -> None:
    """Until a decision is shown, the frame has arrived and the history holds `decisions`."""
    page.wait_for_function(
        "document.getElementById('label').textContent !== '\u2026'", timeout=WAIT_MS
    )
    page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=WAIT_MS)
    page.wait_for_function(
        f"document.querySelector('#history polyline')?.points.length >= {decisions}",
        timeout=WAIT_MS,
    )


def box(page, selector: str) -> dict:
    return page.locator(selector).bounding_box()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_page_names_the_device_and_model_and_fits_the_window(
    browser, long_video, screens, viewport
):
    process, url = serving(long_video)
    try:
        page = browser.new_page(viewport=viewport)
        page.goto(url)
        wait_live(page, decisions=60)  # ten seconds of history: the strip is full
        heading = page.inner_text("h1")
        assert socket.gethostname() in heading and "default" in heading
        # The decision is the largest text on the page.
        label_px = page.eval_on_selector("#label", "e => parseFloat(getComputedStyle(e).fontSize)")
        assert label_px >= 40
        # The longest CIFAR name on one line (set and measured in one script: no event between).
        automobile_px = page.eval_on_selector(
            "#label",
            "e => { e.textContent = 'automobile'; return e.getBoundingClientRect().height; }",
        )
        assert automobile_px < 1.5 * label_px
        # The video follows the window: most of a desktop's width, all of a phone's, and
        # never taller than the window.
        video = box(page, "#stream")
        if viewport is DESKTOP:
            assert video["width"] >= 0.55 * viewport["width"]
            assert video["y"] + video["height"] <= viewport["height"]
        else:
            assert video["width"] >= 0.9 * viewport["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        card = page.inner_text("#card")
        assert "Trained on CIFAR-10" in card and "92.8% of CIFAR-10's 10,000 test images" in card
        assert "KiB" in card and 'Never says "uncertain"' in card
        assert page.locator("#changes li").count() >= 1
        assert float(page.inner_text("#fps")) > 0
        name = f"page-{viewport['width']}x{viewport['height']}.png"
        page.screenshot(path=str(screens / name), full_page=viewport is PHONE)

        page.set_input_files("#upload input", str(CAT))
        page.wait_for_function(
            "document.getElementById('upload-result').textContent.includes('score')",
            timeout=WAIT_MS,
        )
        assert page.inner_text("#upload-result").startswith("0000_cat.png: cat (score")
        page.close()
    finally:
        stopped(process)


def test_the_stream_moves_and_the_label_follows_the_video(browser, long_video):
    process, url = serving(long_video, "--json")
    labels_seen = set()
    try:
        page = browser.new_page(viewport=DESKTOP)
        page.goto(url)
        wait_live(page)
        checksum = """() => { const img = document.getElementById('stream');
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const context = canvas.getContext('2d'); context.drawImage(img, 0, 0);
            const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
            let sum = 0;
            for (let i = 0; i < data.length; i += 7) sum = (sum * 31 + data[i]) % 1e9;
            return sum; }"""
        first = page.evaluate(checksum)
        page.wait_for_function(f"({checksum})() !== {first}", timeout=WAIT_MS)
        labels_seen.add(page.evaluate("() => document.getElementById('label').textContent"))
        for _ in range(3):  # the sample clip moves through CIFAR classes: so does the label
            # The new label as it was when the wait ended: read again after it, on a loaded
            # machine it may already be back to one seen before.
            new_label = page.wait_for_function(
                "([seen]) => { const text = document.getElementById('label').textContent;"
                " return seen.includes(text) ? false : text; }",
                arg=[sorted(labels_seen)],
                timeout=WAIT_MS,
            )
            labels_seen.add(new_label.json_value())
        page.close()
    finally:
        stopped(process)
    assert len(labels_seen) >= 4


def test_with_a_token_the_page_asks_for_it_once_per_session(browser, long_video, screens):
    process, url = serving(long_video, "--token", TOKEN)
    try:
        for viewport in (DESKTOP, PHONE):
            context = browser.new_context(viewport=viewport)
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("#login.shown", timeout=WAIT_MS)
            size = f"{viewport['width']}x{viewport['height']}"
            page.screenshot(path=str(screens / f"login-{size}.png"))
            page.fill("#token", "not-the-token")
            page.click("#login button")
            page.wait_for_function(
                "document.getElementById('login-error').textContent.includes('not this camera')",
                timeout=WAIT_MS,
            )
            page.fill("#token", TOKEN)
            page.click("#login button")
            wait_live(page)
            assert not page.is_visible("#login")
            page.screenshot(
                path=str(screens / f"page-token-{size}.png"), full_page=viewport is PHONE
            )
            page.reload()  # the session keeps the token: no form again
            wait_live(page)
            assert not page.is_visible("#login")
            page.set_input_files("#upload input", str(CAT))  # uploads carry it too
            page.wait_for_function(
                "document.getElementById('upload-result').textContent.includes('cat (score')",
                timeout=WAIT_MS,
            )
            context.close()

        context = browser.new_context(viewport=DESKTOP)  # a ?token= link opens it directly...
        page = context.new_page()
        page.goto(f"{url}?token={TOKEN}")
        wait_live(page)
        assert "token" not in page.url  # ...and leaves no token in the address bar
        context.close()
    finally:
        stopped(process)
