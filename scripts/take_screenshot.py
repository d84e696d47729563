"""Regenerate docs/screenshot.png: launch the lab, train the default model, capture the Train tab.

    python scripts/take_screenshot.py        # needs Debian's chromium and the dev requirements
"""

import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
PORT = 7877


def main() -> None:
    runs = tempfile.mkdtemp(prefix="vision-lab-shot-")
    app = subprocess.Popen([sys.executable, "lab_app.py", "--port", str(PORT), "--runs-dir", runs], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(f"http://127.0.0.1:{PORT}/?model=small_cnn&epochs=20")
            page.get_by_text("small_cnn: ").wait_for()
            page.wait_for_timeout(1500)
            page.click("#train-button")
            page.wait_for_function("() => /Done/.test(document.querySelector('#train-status').innerText)",
                                   timeout=180_000)
            page.wait_for_timeout(1500)
            out = ROOT / "docs" / "screenshot.png"
            page.screenshot(path=str(out))
            browser.close()
            print(f"wrote {out}")
    finally:
        app.terminate()


if __name__ == "__main__":
    main()
