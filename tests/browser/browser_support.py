"""Helpers for the real-browser tests: Debian's headless Chromium (/usr/bin/chromium, driven by
Playwright) against a real `ballot-service serve` process. No browser is downloaded: Playwright
is pointed at the system Chromium (`executable_path`). The fixtures (chromium, new_page,
live_site) are in tests/browser/conftest.py:

    def test_x(new_page, live_site): ...

Screenshots go to build/screenshots/ (override with BALLOT_SCREENSHOT_DIR); look at them."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

SCREENSHOTS = Path(os.environ.get("BALLOT_SCREENSHOT_DIR") or Path(__file__).resolve().parents[2]
                   / "build" / "screenshots")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync", "--disable-default-apps", "--mute-audio"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page, base_url: str, operator) -> None:
    page.goto(base_url + "/login")
    page.fill("input[name=username]", operator[0])
    page.fill("input[name=password]", operator[1])
    page.click("button[type=submit]")
    page.wait_for_load_state()
