"""How docs/app.png was taken: `lrnet app` (camvid-lite) on a shipped CamVid street frame, at s_3.

.venv/bin/python docs/runs/app/screenshot.py   # from the repository root; needs chromium

Starts the app on a free port, uploads src/lrnet/samples/camvid_0006R0_f02640.jpg, picks s_3,
clicks a pixel of the overlay (the class under the cursor) and saves the whole page.
"""

import socket
import subprocess
import sys

from playwright.sync_api import sync_playwright

SAMPLE = "src/lrnet/samples/camvid_0006R0_f02640.jpg"

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = subprocess.Popen(
    [sys.executable, "-m", "lrnet", "app", "--port", str(port)],
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
)
try:
    assert server.stdout is not None
    for line in server.stdout:
        print(line, end="")
        if "lrnet app: serving" in line:
            break
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(f"http://127.0.0.1:{port}/")
        page.locator("#lrnet-input input[type=file]").set_input_files(SAMPLE)
        page.locator("#lrnet-status").get_by_text("labelled in").wait_for()
        page.locator("#lrnet-stage").get_by_text("s_3", exact=True).click()
        page.locator("#lrnet-shares").get_by_text("Pixel shares at s_3").wait_for()
        overlay = page.locator("#lrnet-overlay img")
        box = overlay.bounding_box()
        assert box is not None
        overlay.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.75})
        page.locator("#lrnet-pointed").get_by_text(" in s_3").wait_for()
        page.screenshot(path="docs/app.png", full_page=True)
        browser.close()
finally:
    server.terminate()
    server.wait()
