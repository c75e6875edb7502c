"""Screenshot of the web page after completing a region of a photo, in headless Debian Chromium
(Playwright with ``executable_path``; never ``playwright install``). For the README:

    python scripts/demo_screenshot.py examples/astronaut.jpg --region eyes --out docs/images/demo.jpg
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
from pathlib import Path

from PIL import Image

from collaface.demo.app import DemoSession, build_app, launch
from collaface.inference.engine import FaceCompleter

TIMEOUT_MS = 120_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo")
    parser.add_argument("--region", default="eyes")
    parser.add_argument("--model", help="default: the shipped weights")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = DemoSession(FaceCompleter(args.model, device="cpu"), max_upload_mb=20)
    app = build_app(session)
    url = launch(app, "127.0.0.1", port, 20, block=False)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium", headless=True,
                args=["--disable-background-networking", "--disable-component-update"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.locator("#upload input[type=file]").set_input_files(args.photo)
            page.wait_for_function("document.querySelector('#status').innerText.includes('Loaded')")
            page.locator("#region input").click()
            page.get_by_role("option", name=args.region, exact=True).click()
            page.locator("#complete").click()
            page.wait_for_function("document.querySelector('#status').innerText.includes('Completed')")
            page.wait_for_timeout(1500)  # let the result images render
            with tempfile.TemporaryDirectory() as tmp:
                shot = Path(tmp) / "demo.png"
                page.screenshot(path=str(shot), full_page=True)
                image = Image.open(shot).convert("RGB")
                image.thumbnail((1000, 1000))
                image.save(args.out, quality=85)
            browser.close()
    finally:
        app.close()
        session.close()
    print(f"screenshot: {args.out}")


if __name__ == "__main__":
    main()
