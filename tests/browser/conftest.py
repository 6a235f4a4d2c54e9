"""Fixtures of the real-browser tests (everything under tests/browser/, marked `browser`):
a module-wide headless Chromium, fresh pages, and a real server with its operators."""
from __future__ import annotations

import pytest
from browser_support import CHROMIUM_ARGS, chromium_path
from helpers_live import (
    AUDITOR,
    DISPLAY_OPERATOR,
    OPERATOR,
    Api,
    LiveServer,
    create_operator_in_db,
    server_env,
)
from playwright.sync_api import sync_playwright


@pytest.fixture(scope="module")
def chromium():
    exe = chromium_path()
    if exe is None:
        pytest.fail("Debian's chromium is not installed (apt-get install chromium); scripts/test.sh installs it")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium):
    """Factory for pages in fresh browser contexts (separate cookies: one per person/device)."""
    contexts = []

    def make(viewport=(1280, 800), locale="zh-CN", enforce_csp=False):
        # Playwright's wait_for_function evaluates its predicate with eval() in the page, which
        # the service's Content-Security-Policy forbids; so pages bypass the CSP unless a test
        # asks for it (test_csp_in_chromium.py loads the pages under the CSP).
        ctx = chromium.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale=locale,
                                   bypass_csp=not enforce_csp)
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
