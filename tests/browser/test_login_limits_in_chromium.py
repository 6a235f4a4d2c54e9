"""Login limits in real headless Chromium against a real server (two workers) behind a
reverse proxy (BALLOT_TRUSTED_PROXIES=127.0.0.1; the pages send the X-Forwarded-For the proxy
would): an attacker's computer that fails five times is locked out and told the way in, while
the secretariat at another computer logs in with the right password at once. Screenshots go
to build/screenshots/login-*.png."""
from __future__ import annotations

import pytest
from browser_support import login, screenshot
from helpers_live import OPERATOR, LiveServer, create_operator_in_db, server_env

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def proxied_site(tmp_path, db_url):
    env = {**server_env(tmp_path, db_url), "BALLOT_TRUSTED_PROXIES": "127.0.0.1"}
    create_operator_in_db(db_url, OPERATOR, "secretariat")
    srv = LiveServer.start(env, workers=2)
    yield srv
    srv.stop()


def try_password(page, base: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", OPERATOR[0])
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_a_locked_out_computer_does_not_lock_out_the_secretariat(new_page, proxied_site):
    base = proxied_site.base_url
    attacker, secretariat = new_page((1280, 800)), new_page((1280, 800))
    attacker.set_extra_http_headers({"X-Forwarded-For": "10.0.0.66"})
    secretariat.set_extra_http_headers({"X-Forwarded-For": "10.0.0.7"})
    for _ in range(5):
        try_password(attacker, base, "guessed-password")
        assert "用户名或密码错误" in attacker.inner_text(".flash.error")
    try_password(attacker, base, OPERATOR[1])  # even the right password, from there
    message = attacker.inner_text(".flash.error")
    assert "登录失败次数过多" in message and "换一台电脑" in message and "operator unlock" in message
    assert attacker.url.startswith(base + "/login")
    screenshot(attacker, "login-locked-from-this-computer")

    login(secretariat, base, OPERATOR)
    assert secretariat.url == base + "/console"
    screenshot(secretariat, "login-secretariat-from-another-computer")
