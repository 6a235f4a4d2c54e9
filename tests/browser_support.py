"""Real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a real
`ballot-service serve` process. No browser is downloaded: Playwright is pointed at the
system Chromium (`executable_path`).

    def test_x(browser_page, live_site): ...

Screenshots go to build/screenshots/ (override with BALLOT_SCREENSHOT_DIR); look at them."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers_live import OPERATOR, Api, LiveServer, create_operator_in_db, server_env

SCREENSHOTS = Path(os.environ.get("BALLOT_SCREENSHOT_DIR") or Path(__file__).resolve().parent.parent
                   / "build" / "screenshots")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync", "--disable-default-apps", "--mute-audio"]
DISPLAY_OPERATOR = ("screen", "screen-password-1")
AUDITOR = ("auditor", "auditor-password-1")


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def chromium():
    exe = chromium_path()
    if exe is None:
        pytest.fail("Debian's chromium is not installed (apt-get install chromium); scripts/test.sh installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium):
    """Factory for pages in fresh browser contexts (separate cookies: one per person/device)."""
    contexts = []

    def make(viewport=(1280, 800), locale="zh-CN"):
        ctx = chromium.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale=locale)
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(15_000)
        return page

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def live_site(tmp_path, db_url):
    """A real server with a secretariat operator, a display operator and an auditor."""
    env = server_env(tmp_path, db_url)
    create_operator_in_db(db_url, OPERATOR, "secretariat")
    create_operator_in_db(db_url, DISPLAY_OPERATOR, "display")
    create_operator_in_db(db_url, AUDITOR, "auditor")
    srv = LiveServer.start(env, workers=2, threads=16)
    srv.api = Api.httpx(srv.base_url)
    yield srv
    srv.stop()


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
