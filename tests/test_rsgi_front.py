"""The RSGI front (web/rsgi.py) that `serve` puts before the ASGI application: what the ASGI
application sees of a request, and what goes out of its answers. The live-server tests
(test_asgi_streams.py, test_live_server.py, test_two_nodes.py) run every request through it;
here a stand-in for granian's protocol object shows each rule on its own, and one live server
the parts granian itself does (a chunked body, a cut connection, headers as sent)."""
from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
from granian.rsgi import ProtocolClosed
from helpers_live import OPERATOR, LiveServer, create_operator_in_db, server_env

from ballot_service.web import cast_endpoint
from ballot_service.web.rsgi import WHOLE_BODY_BYTES, RsgiFront, asgi_scope


class _Headers:
    def __init__(self, pairs):
        self.pairs = pairs

    def items(self):
        return list(self.pairs)

    def get(self, key, default=None):
        return next((v for k, v in self.pairs if k == key), default)


class _Scope:
    proto, http_version, scheme, method = "http", "1.1", "http", "POST"
    path, query_string, client, server = "/a b/中", "x=%20y&z=1", "10.0.0.7:51234", "10.0.0.1:8000"

    def __init__(self, headers):
        self.headers = _Headers(headers)


class _Protocol:
    """What granian hands __rsgi__: the body (whole, or in parts) and the answer's calls."""

    def __init__(self, body=b"", parts=None, closed_after=None):
        self.body, self.parts, self.closed_after = body, parts, closed_after
        self.whole_reads, self.answers, self.sent = 0, [], []
        self.gone = asyncio.Event()

    async def __call__(self):
        self.whole_reads += 1
        return self.body

    def __aiter__(self):
        async def parts():
            for part in self.parts:
                yield part
        return parts()

    async def client_disconnect(self):
        await self.gone.wait()

    def response_bytes(self, status, headers, body):
        self.answers.append(("bytes", status, headers, body))

    def response_stream(self, status, headers):
        self.answers.append(("stream", status, headers))
        protocol = self

        class Transport:
            async def send_bytes(self, data):
                if protocol.closed_after is not None and len(protocol.sent) >= protocol.closed_after:
                    raise ProtocolClosed("gone")
                protocol.sent.append(data)
        return Transport()


def _run(app, scope, protocol):
    asyncio.run(RsgiFront(app).__rsgi__(scope, protocol))


def test_the_asgi_scope_is_the_one_granians_asgi_gives():
    scope = asgi_scope(_Scope([("host", "hall:8000"), ("x-dup", "1"), ("x-dup", "2"), ("cookie", "c=1")]))
    assert scope["type"] == "http" and scope["method"] == "POST" and scope["http_version"] == "1.1"
    assert scope["path"] == "/a b/中" and scope["query_string"] == b"x=%20y&z=1" and scope["root_path"] == ""
    assert scope["headers"] == [(b"host", b"hall:8000"), (b"x-dup", b"1"), (b"x-dup", b"2"), (b"cookie", b"c=1")]
    assert scope["client"] == ("10.0.0.7", 51234) and scope["server"] == ("10.0.0.1", 8000)
    ipv6 = _Scope([])
    ipv6.client = "[::1]:4000"
    assert asgi_scope(ipv6)["client"] == ("::1", 4000)


def test_a_declared_body_is_one_message_then_the_disconnect_is_told():
    seen = []

    async def app(scope, receive, send):
        seen.append(await receive())
        waiting = asyncio.ensure_future(receive())
        await asyncio.sleep(0.01)
        assert not waiting.done()  # the client is still there
        protocol.gone.set()
        seen.append(await waiting)
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"application/json"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    protocol = _Protocol(body=b'{"marks": {}}')
    _run(app, _Scope([("content-length", "13")]), protocol)
    assert seen == [{"type": "http.request", "body": b'{"marks": {}}', "more_body": False}, {"type": "http.disconnect"}]
    assert protocol.whole_reads == 1
    assert protocol.answers == [("bytes", 201, [("content-type", "application/json"), ("set-cookie", "a=1"),
                                                ("set-cookie", "b=2")], b"{}")]


@pytest.mark.parametrize("declared", [None, str(WHOLE_BODY_BYTES + 1)])
def test_an_undeclared_or_long_body_comes_in_parts_so_a_limit_stops_reading(declared):
    # The ASGI application refuses a body over its limit after the part that crossed it
    # (web/asgi.py FlaskOnThreads.read_body): the rest is never asked for.
    got = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            got.append(message)
            if sum(len(m["body"]) for m in got) > 10 or not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"too large"})

    protocol = _Protocol(parts=[b"x" * 8, b"x" * 8, b"x" * 8, b"x" * 8])
    _run(app, _Scope([] if declared is None else [("content-length", declared)]), protocol)
    assert protocol.whole_reads == 0 and len(got) == 2 and all(m["more_body"] for m in got)
    assert protocol.answers == [("bytes", 413, [], b"too large")]


def test_a_body_in_parts_ends_with_an_empty_last_message():
    got = []

    async def app(scope, receive, send):
        while not got or got[-1]["more_body"]:
            got.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"".join(m["body"] for m in got)})

    protocol = _Protocol(parts=[b"ab", b"cd"])
    _run(app, _Scope([]), protocol)
    assert [m["more_body"] for m in got] == [True, True, False]
    assert protocol.answers == [("bytes", 200, [], b"abcd")]


def test_a_stream_goes_out_as_its_parts_come_and_a_cut_connection_is_an_oserror():
    ended = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        try:
            for n in range(5):
                await send({"type": "http.response.body", "body": f"data: {n}\n\n".encode(), "more_body": True})
        except OSError:  # what EventStream catches: the screen went away
            ended.append("cut")
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    protocol = _Protocol(closed_after=2)
    _run(app, _Scope([]), protocol)
    assert protocol.answers == [("stream", 200, [("content-type", "text/event-stream")])]
    assert protocol.sent == [b"data: 0\n\n", b"data: 1\n\n"] and ended == ["cut"]


def test_the_applications_lifespan_runs_at_the_workers_start_and_stop():
    phases = []

    async def app(scope, receive, send):
        assert scope["type"] == "lifespan"
        message = await receive()
        phases.append(message["type"])
        await send({"type": message["type"] + ".complete"})

    front, loop = RsgiFront(app), asyncio.new_event_loop()
    try:
        front.__rsgi_init__(loop)
        front.__rsgi_del__(loop)
    finally:
        loop.close()
    assert phases == ["lifespan.startup", "lifespan.shutdown"]


# --- through granian ----------------------------------------------------------------------------

@pytest.fixture
def live(tmp_path, db_url):
    create_operator_in_db(db_url, OPERATOR)
    srv = LiveServer.start(server_env(tmp_path, db_url), workers=1)
    yield srv
    srv.stop()


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_through_granian_a_chunked_oversized_cast_is_refused(live):
    # 20 chunks of 16 KB without a Content-Length: refused (413) once past the tablets' limit.
    chunk = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
    head = (f"POST {cast_endpoint.PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    status, _, body = _raw(live.port, head + chunk * 20 + b"0\r\n\r\n").partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 413") and json.loads(body)["errors"][0]["errorType"] == "PayloadTooLarge"


def test_through_granian_paths_queries_and_headers_reach_flask_as_sent(live):
    with httpx.Client(base_url=live.base_url, timeout=30) as client:
        r = client.post("/api/admin/login", json={"username": OPERATOR[0], "password": OPERATOR[1]},
                        headers={"Accept-Language": "en"})
        assert r.status_code == 200 and r.cookies  # the login's cookie came back, and is sent again below
        unknown = client.get("/api/admin/sessions/999999/attendance", params={"q": "人大 常委会"})
        # Logged in (else 401): the id in the path was looked up.
        assert unknown.status_code == 404 and unknown.json()["errors"][0]["where"] == "sitting_id"
        missing = client.get("/api/admin/不存在")
        assert missing.status_code == 404 and missing.json()["errors"]
        assert missing.headers["content-type"].startswith("application/json")
