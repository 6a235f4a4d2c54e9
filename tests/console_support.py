"""Helpers of the secretariat console's tests (HTML forms through the Flask test client): the
CSRF token of the login page, a form POST carrying it, the flashed messages of a response, and
a print job run to its end.
The logged-in `console` client is a fixture in tests/conftest.py."""
from __future__ import annotations

import re
import time

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
FLASH = re.compile(r'class="flash ([a-z]+)"[^>]*>(.*?)</div>', re.S)


def token(client) -> str:
    return CSRF.search(client.get("/login").get_data(as_text=True)).group(1)


def flashes(resp) -> list[tuple[str, str]]:
    return [(k, re.sub(r"\s+", " ", re.sub("<[^>]+>", " ", v)).strip()) for k, v in
            FLASH.findall(resp.get_data(as_text=True))]


def post(client, url, data=None, **kw):
    return client.post(url, data={"csrf_token": token(client), **(data or {})}, **kw)


def print_ballots(client, item_id: int, count: int) -> dict:
    """Print `count` paper ballots of an item from its console page and wait for the background
    job (up to 2 minutes): the job's last state ({"state", "done", "files", …})."""
    r = post(client, f"/console/items/{item_id}/print", {"count": str(count)})
    job = re.search(r"job=([0-9a-f]+)", r.headers["Location"]).group(1)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = client.get(f"/console/jobs/{job}").get_json()
        if state["state"] != "running":
            break
        time.sleep(0.2)
    return state
