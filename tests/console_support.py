"""Helpers of the secretariat console's tests (HTML forms through the Flask test client): the
CSRF token of the login page, a form POST carrying it, and the flashed messages of a response.
The logged-in `console` client is a fixture in tests/conftest.py."""
from __future__ import annotations

import re

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
FLASH = re.compile(r'class="flash ([a-z]+)"[^>]*>(.*?)</div>', re.S)


def token(client) -> str:
    return CSRF.search(client.get("/login").get_data(as_text=True)).group(1)


def flashes(resp) -> list[tuple[str, str]]:
    return [(k, re.sub(r"\s+", " ", re.sub("<[^>]+>", " ", v)).strip()) for k, v in
            FLASH.findall(resp.get_data(as_text=True))]


def post(client, url, data=None, **kw):
    return client.post(url, data={"csrf_token": token(client), **(data or {})}, **kw)
