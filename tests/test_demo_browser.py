"""``collaface demo`` in a real browser: Debian's chromium driven headless by Playwright.

Needs gradio (the demo extra), Playwright for Python (pip) and Debian's chromium
(``apt-get install -y chromium``); skips with the reason when one is missing. Never run
``playwright install``: its browser download cannot work offline. Set COLLAFACE_DEMO_SCREENSHOT
to a path to keep a screenshot of the completed page there, and COLLAFACE_DEMO_SCREENSHOTS to a
folder to keep the first-view screenshots of the viewport test.
"""

from __future__ import annotations

import importlib.util
import io as bytes_io
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from conftest import requires_mediapipe
from PIL import Image
from test_inference import make_tiny_model

from collaface.data import io
from collaface.inference.engine import FaceCompleter

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",  # no network
    "--disable-background-networking",
    "--disable-component-update",
]
MAX_UPLOAD_MB = 1
FACE = "celeba_crops/images/182649.jpg"
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.slow,
    requires_mediapipe,
    pytest.mark.skipif(importlib.util.find_spec("gradio") is None,
                       reason="gradio not installed (pip install 'collaface[demo]')"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="Playwright for Python not installed (pip install playwright==1.65.2)"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="Debian chromium not installed (apt-get install -y chromium)"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from collaface.demo.app import DemoSession, build_app, launch

    model = make_tiny_model(tmp_path_factory.mktemp("model"))
    session = DemoSession(FaceCompleter(model, device="cpu"), max_upload_mb=MAX_UPLOAD_MB)
    app = build_app(session)
    url = launch(app, "127.0.0.1", free_port(), MAX_UPLOAD_MB, block=False)
    yield url
    app.close()
    session.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(server)
    yield tab
    tab.close()


def upload(page, path: Path) -> None:
    page.locator("#upload input[type=file]").set_input_files(str(path))


def wait_for_status(page, *words: str) -> str:
    """Wait until the status line contains one of ``words``; -> its text."""
    condition = " || ".join(f"document.querySelector('#status').innerText.includes({w!r})" for w in words)
    page.wait_for_function(condition, timeout=TIMEOUT_MS)
    return page.locator("#status").inner_text()


def fetch_image(page, selector: str) -> np.ndarray:
    source = page.locator(f"{selector} img").first.get_attribute("src")
    return np.asarray(Image.open(bytes_io.BytesIO(page.request.get(source).body())).convert("RGB"))


def test_paint_a_hole_and_complete(page, shared_faces, tmp_path):
    photo_path = shared_faces / FACE
    photo = io.load_rgb(photo_path)
    height, width = photo.shape[:2]
    upload(page, photo_path)
    assert "Loaded" in wait_for_status(page, "Loaded", "Refused")

    # paint a stroke across the eyes: the photo is drawn centred on the canvas at the shown zoom
    page.locator("#editor button[aria-label=Brush]").click()
    zoom = float(page.locator("#editor").inner_text().split()[-1].rstrip("%")) / 100
    canvas = page.locator("#editor canvas").first.bounding_box()
    centre_x, centre_y = canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2

    def to_page(x: float, y: float) -> tuple[float, float]:
        return centre_x + (x - width / 2) * zoom, centre_y + (y - height / 2) * zoom

    stroke_x, stroke_y = (60, 140), 100
    page.mouse.move(*to_page(stroke_x[0], stroke_y))
    page.mouse.down()
    for x in range(stroke_x[0], stroke_x[1] + 1, 10):
        page.mouse.move(*to_page(x, stroke_y), steps=3)
    page.mouse.up()

    page.locator("#complete").click()
    assert "Completed 1 face" in wait_for_status(page, "Completed", "Could not", "with the brush")
    result = fetch_image(page, "#result")
    assert result.shape == photo.shape
    changed = (result != photo).any(axis=2)
    assert changed.sum() > 500
    # only near the stroke (brush radius well under 40 photo pixels)
    near = np.zeros_like(changed)
    near[stroke_y - 40:stroke_y + 40, stroke_x[0] - 40:stroke_x[1] + 40] = True
    assert not (changed & ~near).any()
    assert page.locator("#parsing img").count() == 1 and page.locator("#landmarks img").count() == 1

    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
    if os.environ.get("COLLAFACE_DEMO_SCREENSHOT"):
        shutil.copy(tmp_path / "demo.png", os.environ["COLLAFACE_DEMO_SCREENSHOT"])


def test_region_preset_and_downloads(page, shared_faces):
    upload(page, shared_faces / FACE)
    wait_for_status(page, "Loaded", "Refused")
    page.locator("#region input").click()
    page.get_by_role("option", name="mouth", exact=True).click()
    page.locator("#complete").click()
    assert "Completed 1 face" in wait_for_status(page, "Completed", "Could not")
    downloads = page.locator("#downloads").inner_text()
    for name in ("completed", "parsing", "landmarks"):
        assert name in downloads
    photo = io.load_rgb(shared_faces / FACE)
    changed = (fetch_image(page, "#result") != photo).any(axis=2)
    rows = np.nonzero(changed.any(axis=1))[0]
    assert changed.any() and rows.min() > photo.shape[0] / 2  # the mouth is in the lower half


def test_refuses_non_images_and_big_files_with_a_message(page, tmp_path):
    (tmp_path / "fake.jpg").write_text("this is not a photo")
    upload(page, tmp_path / "fake.jpg")
    status = wait_for_status(page, "Refused", "Loaded")
    assert "Refused" in status and "not a usable image" in status

    (tmp_path / "big.png").write_bytes(os.urandom(int(1.5 * MAX_UPLOAD_MB * 2**20)))
    upload(page, tmp_path / "big.png")
    page.get_by_text("exceed the maximum allowed size").first.wait_for()

    (tmp_path / "notes.txt").write_text("hello")
    upload(page, tmp_path / "notes.txt")
    page.get_by_text("Invalid file type").first.wait_for()
    assert page.locator("#result img").count() == 0


@pytest.mark.parametrize("viewport", [(1280, 900), (390, 844)], ids=["desktop", "phone"])
def test_complete_button_is_in_view_without_scrolling(browser, server, shared_faces, tmp_path, viewport):
    width, height = viewport
    tab = browser.new_page(viewport={"width": width, "height": height})
    tab.set_default_timeout(TIMEOUT_MS)
    try:
        tab.goto(server)
        for moment in ("start", "loaded"):
            if moment == "loaded":
                upload(tab, shared_faces / FACE)
                assert "Loaded" in wait_for_status(tab, "Loaded", "Refused")
            button = tab.locator("#complete")
            button.wait_for(state="visible")
            box = button.bounding_box()
            shot = tmp_path / f"demo_{width}x{height}_{moment}.png"
            tab.screenshot(path=str(shot))  # the first view, no scrolling
            if os.environ.get("COLLAFACE_DEMO_SCREENSHOTS"):
                shutil.copy(shot, Path(os.environ["COLLAFACE_DEMO_SCREENSHOTS"]) / shot.name)
            assert tab.evaluate("window.scrollY") == 0
            assert box["x"] >= 0 and box["y"] >= 0
            assert box["x"] + box["width"] <= width and box["y"] + box["height"] <= height
    finally:
        tab.close()
