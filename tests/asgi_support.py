"""Driving the ASGI app (web/asgi.py) in-process: one request at a time, on the test's own event
loop, so its watcher, long-polls and loop answers run as under granian."""
from __future__ import annotations

import json


def scope(method: str, path: str, body: bytes, credential: str | None, query: bytes = b"") -> dict:
    headers = [(b"host", b"localhost"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if credential:
        headers.append((b"authorization", f"Bearer {credential}".encode()))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 5000), "server": ("localhost", 80)}


async def call(ag, method: str, path: str, credential: str | None, payload=None, query: bytes = b""):
    """(status, headers as a dict, body bytes) of one request to the ASGI app."""
    body = b"" if payload is None else json.dumps(payload).encode()
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await ag(scope(method, path, body, credential, query), receive, send)
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers, sent[1]["body"]


async def taught(ag, credential: str) -> dict:
    """The seat's long-poll (a tag it does not hold: Flask answers at once), which teaches the
    worker the seat; the state it answered."""
    status, _, body = await call(ag, "GET", "/api/terminal/state", credential, query=b"wait=none")
    assert status == 200
    return json.loads(body)
