"""granian's own interface (RSGI) in front of the service's ASGI application (web/asgi.py):
`serve` runs this; the tests call the ASGI application itself.

Why: under ASGI, granian hands a request in and its answer out in several steps that each
cross between its Rust threads and the worker's event loop (receive, response start, body);
here a request's body is one await and an answer one call. On a bare application that answers
a JSON body, granian's ASGI handling cost 0.34-0.55 ms of server CPU per request and this front
0.27-0.36 ms (2 workers, 200 clients, this project's 2-core machine); a cast costs ~1 ms in all,
and every tablet's poll pays it too.

The ASGI application sees what granian's ASGI would give it: the same scope keys (the path
percent-decoded, the query string and headers as bytes, client and server as (host, port)),
the body in one `http.request` message, then `http.disconnect` once the client goes away. An
answer of one body goes out in one call; a stream (the screens' event stream) as its parts
come. Lifespan: the application's shutdown runs when granian stops the worker.
"""
from __future__ import annotations

from granian.rsgi import ProtocolClosed

# A body declared at most this long is read in one await; a longer or undeclared one (chunked)
# is passed on in parts, so the ASGI application's size limit stops reading it (web/asgi.py).
WHOLE_BODY_BYTES = 1 << 20


class RsgiFront:
    """The RSGI application granian calls (`__rsgi__`), around an ASGI application."""

    def __init__(self, asgi_app) -> None:
        self.app = asgi_app

    def __rsgi_init__(self, loop) -> None:
        loop.run_until_complete(self._lifespan("startup"))

    def __rsgi_del__(self, loop) -> None:
        loop.run_until_complete(self._lifespan("shutdown"))

    async def _lifespan(self, phase: str) -> None:
        async def receive():
            return {"type": f"lifespan.{phase}"}

        async def send(message):
            if message["type"].startswith(f"lifespan.{phase}."):
                raise _LifespanDone

        try:
            await self.app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        except _LifespanDone:
            pass

    async def __rsgi__(self, scope, protocol) -> None:
        exchange = _Exchange(protocol, scope.headers.get("content-length"))
        await self.app(asgi_scope(scope), exchange.receive, exchange.send)


class _LifespanDone(Exception):
    """The application answered the lifespan phase it was given."""


def asgi_scope(scope) -> dict:
    """The ASGI `http` scope of an RSGI request scope."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": scope.http_version, "method": scope.method, "scheme": scope.scheme,
        "path": scope.path, "raw_path": scope.path.encode("utf-8"), "root_path": "",
        "query_string": scope.query_string.encode("utf-8"),
        "headers": [(name.encode("latin-1"), _header_bytes(value)) for name, value in scope.headers.items()],
        "client": _address(scope.client), "server": _address(scope.server),
    }


def _header_bytes(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # granian read the header's bytes as UTF-8
        return value.encode("utf-8")


def _address(text: str | None) -> tuple[str, int] | None:
    """("127.0.0.1", 5000) from "127.0.0.1:5000" ("[::1]:5000": "::1")."""
    if not text:
        return None
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


class _Exchange:
    """One request's ASGI receive and send over its RSGI protocol object."""

    __slots__ = ("protocol", "declared", "parts", "body_done", "status", "headers", "stream")

    def __init__(self, protocol, content_length: str | None) -> None:
        self.protocol = protocol
        self.declared = int(content_length) if content_length and content_length.isdigit() else None
        self.parts = None  # the body's async iterator, when it is passed on in parts
        self.body_done = False
        self.status, self.headers, self.stream = 200, [], None

    async def receive(self) -> dict:
        if not self.body_done:
            if self.declared is not None and self.declared <= WHOLE_BODY_BYTES:
                self.body_done = True
                return {"type": "http.request", "body": await self.protocol(), "more_body": False}
            if self.parts is None:
                self.parts = self.protocol.__aiter__()
            try:
                return {"type": "http.request", "body": await self.parts.__anext__(), "more_body": True}
            except StopAsyncIteration:
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
        await self.protocol.client_disconnect()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ())]
            return
        if kind != "http.response.body":
            return
        body, more = message.get("body", b""), message.get("more_body", False)
        try:
            if self.stream is None and not more:
                self.protocol.response_bytes(self.status, self.headers, body)
                return
            if self.stream is None:
                self.stream = self.protocol.response_stream(self.status, self.headers)
            if body:
                await self.stream.send_bytes(body)
        except ProtocolClosed as exc:  # the client went away mid-answer, as ASGI servers say it
            raise OSError("the client closed the connection") from exc
