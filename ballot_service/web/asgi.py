"""The service as an ASGI application (what `serve` runs under granian): the presiding
screens' event streams live on the worker's event loop, everything else is the Flask app.

Why: a WSGI event stream holds one server thread for as long as the screen is open (up to
five minutes at a time), so 20 screens took 20 of the 32 threads that casts and tablet polls
need. Here an open screen costs a coroutine. Every other request goes to Flask through
a2wsgi, which runs it on the worker's thread pool, exactly as the WSGI server did.

One event stream, `GET /display/<id>/events` (same contract as display.event_stream):
- the stream is authorised, and its every state built, by Flask itself: an internal
  `GET /display/<id>/state` with the screen's own headers (cookie, host, language), so the
  role and body checks, the login's expiry and the state's rules are the ones every other
  request meets; a refusal (401/403/404) is answered as Flask answered it;
- one watcher per worker process polls the audit head's seq every POLL_SECONDS on a thread
  and wakes the streams when it moves; each stream then asks for the state again (at most
  once per change and per POLL_SECONDS) and sends it only if it differs from the last one;
  a refusal in the middle (login ended, operator disabled) ends the stream;
- `retry`, the state at once, a heartbeat every HEARTBEAT_SECONDS, `bye` after
  STREAM_SECONDS (the page reconnects, which renews the login's idle timer).
"""
from __future__ import annotations

import asyncio
import io
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

from a2wsgi.wsgi import build_environ
from flask import Flask
from werkzeug.test import EnvironBuilder, run_wsgi_app

from ballot_service.domain import audit
from ballot_service.web import display

EVENTS_PATH = re.compile(r"^/display/([0-9]{1,10})/events$")
# Headers of the screen's request that Flask's answer may depend on; nothing else is passed on.
FORWARDED = (b"cookie", b"host", b"accept-language", b"x-forwarded-for", b"x-forwarded-proto",
             b"x-forwarded-host", b"user-agent")


def create_asgi_app(flask_app: Flask, threads: int = 16):
    """The ASGI callable: event streams here, the rest to `flask_app` on `threads` threads."""
    wsgi = FlaskOnThreads(flask_app, threads)
    watcher = HeadWatcher(flask_app)
    cfg = flask_app.config

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, watcher)
            return
        if scope["type"] == "http" and scope["method"] == "GET":
            m = EVENTS_PATH.match(scope["path"])
            if m:
                stream = EventStream(flask_app, watcher, scope, f"/display/{m.group(1)}/state",
                                     poll=cfg.get("DISPLAY_POLL_SECONDS", display.POLL_SECONDS),
                                     heartbeat=cfg.get("DISPLAY_HEARTBEAT_SECONDS", display.HEARTBEAT_SECONDS),
                                     lifetime=cfg.get("DISPLAY_STREAM_SECONDS", display.STREAM_SECONDS))
                await stream.run(receive, send)
                return
        await wsgi(scope, receive, send)

    return app


class FlaskOnThreads:
    """Every other request: Flask on a pool of `threads` threads, in one hand-off each.

    The body is read on the event loop (up to MAX_CONTENT_LENGTH, which Flask enforces too),
    the request runs on a thread, and the whole answer comes back at once. a2wsgi's
    WSGIMiddleware crosses between loop and thread for every read and every write instead,
    which doubled the server's CPU per cast (1.1 against 0.5 ms, benchmarks/bench_casts.py);
    its environ builder is used as is."""

    def __init__(self, flask_app: Flask, threads: int) -> None:
        self.flask_app = flask_app
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="flask")
        self.limit = int(flask_app.config.get("MAX_CONTENT_LENGTH") or 16 * 1024 * 1024)

    async def __call__(self, scope, receive, send) -> None:
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await _send_whole(send, 413, [("Content-Type", "application/json")], json.dumps(
                    {"errors": [{"message": f"the request body is larger than {self.limit} bytes",
                                 "where": "body"}]}).encode())
                return
        environ = build_environ(scope, io.BytesIO(bytes(body)))
        status, headers, content = await asyncio.get_running_loop().run_in_executor(self.pool, self._run, environ)
        await _send_whole(send, status, headers, content)

    def _run(self, environ: dict) -> tuple[int, list, bytes]:
        started: dict = {}
        written: list[bytes] = []

        def start_response(status, headers, exc_info=None):
            started["status"], started["headers"] = status, headers
            return written.append

        result = self.flask_app(environ, start_response)
        try:
            written.extend(result)
        finally:
            getattr(result, "close", lambda: None)()
        return int(started["status"].split(" ", 1)[0]), started["headers"], b"".join(written)


async def _send_whole(send, status: int, headers: list, content: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]})
    await send({"type": "http.response.body", "body": content})


async def _lifespan(receive, send, watcher: "HeadWatcher") -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            watcher.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


class HeadWatcher:
    """The audit head's seq, polled by one task per process while any stream listens."""

    def __init__(self, flask_app: Flask) -> None:
        self._engine = flask_app.extensions["ballot_read_engine"]
        self._poll = flask_app.config.get("DISPLAY_POLL_SECONDS", display.POLL_SECONDS)
        self.seq: int | None = None
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._listeners = 0

    async def wait_change(self, seen: int | None, timeout: float) -> int | None:
        """The seq once it differs from `seen`, or the current one after `timeout` seconds."""
        self._listeners += 1
        try:
            if self._task is None or self._task.done():
                self._changed = asyncio.Event()
                self._task = asyncio.create_task(self._run())
            deadline = time.monotonic() + timeout
            while self.seq is None or self.seq == seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except asyncio.TimeoutError:
                    break
            return self.seq
        finally:
            self._listeners -= 1

    async def _run(self) -> None:
        idle_since = None
        while True:
            try:
                seq = await asyncio.to_thread(audit.head_seq, self._engine)
            except Exception:  # the database is away: the streams keep their last state
                seq = self.seq
            if seq != self.seq:
                self.seq = seq
                self._changed.set()
                self._changed = asyncio.Event()
            if self._listeners == 0:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 10 * self._poll:
                    return  # nobody listens: stop polling until a stream asks again
            else:
                idle_since = None
            await asyncio.sleep(self._poll)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class EventStream:
    """One open screen's Server-Sent Events."""

    def __init__(self, flask_app: Flask, watcher: HeadWatcher, scope: dict, state_path: str, *,
                 poll: float, heartbeat: float, lifetime: float) -> None:
        self.flask_app, self.watcher, self.scope, self.state_path = flask_app, watcher, scope, state_path
        self.poll, self.heartbeat, self.lifetime = poll, heartbeat, lifetime
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])
                        if k.lower() in FORWARDED}
        self.closed = False

    def _state(self) -> tuple[int, list, bytes]:
        """Flask's answer to GET <state_path> with the screen's headers (runs on a thread)."""
        scheme = self.scope.get("scheme", "http")
        host = self.headers.get("host") or "localhost"
        environ = EnvironBuilder(path=self.state_path, method="GET", base_url=f"{scheme}://{host}",
                                 headers=self.headers).get_environ()
        client = self.scope.get("client")
        if client:
            environ["REMOTE_ADDR"] = client[0]
        app_iter, status, headers = run_wsgi_app(self.flask_app, environ)
        try:
            body = b"".join(app_iter)
        finally:
            getattr(app_iter, "close", lambda: None)()
        return int(status.split(" ", 1)[0]), list(headers.items()), body

    async def run(self, receive, send) -> None:
        status, headers, body = await asyncio.to_thread(self._state)
        if status != 200:
            await send({"type": "http.response.start", "status": status,
                        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]})
            await send({"type": "http.response.body", "body": body})
            return
        # Flask's cookie (the login's idle timer, renewed) goes out with the stream, as it did
        # when Flask served the stream itself.
        cookies = [(b"set-cookie", v.encode("latin-1")) for k, v in headers if k.lower() == "set-cookie"]
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"), (b"x-content-type-options", b"nosniff"), *cookies]})
        watch_disconnect = asyncio.create_task(self._watch_disconnect(receive))
        try:
            await self._events(send, body)
        except OSError:
            pass  # the screen went away mid-write
        finally:
            watch_disconnect.cancel()

    async def _watch_disconnect(self, receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.closed = True
                return

    async def _events(self, send, first: bytes) -> None:
        async def event(text: str) -> None:
            await send({"type": "http.response.body", "body": text.encode("utf-8"), "more_body": True})

        started = last_write = time.monotonic()
        await event(f"retry: {display.RETRY_MS}\n\n")
        state = json.loads(first)
        last_sent = display.comparable(state)
        await event(_state_event(state))
        seq = self.watcher.seq
        while not self.closed:
            now = time.monotonic()
            if now - started >= self.lifetime:
                await event("event: bye\ndata: {}\n\n")
                break
            wait = min(self.heartbeat - (now - last_write), self.lifetime - (now - started))
            new_seq = await self.watcher.wait_change(seq, max(wait, 0.0))
            if self.closed:
                break
            if new_seq != seq:
                seq = new_seq
                status, _, body = await asyncio.to_thread(self._state)
                if status != 200:  # the login ended or the sitting is gone: the page reconnects
                    await event("event: bye\ndata: {}\n\n")
                    break
                state = json.loads(body)
                key = display.comparable(state)
                if key != last_sent:
                    last_sent, last_write = key, time.monotonic()
                    await event(_state_event(state))
                await asyncio.sleep(self.poll)  # at most one state build per poll interval
            elif time.monotonic() - last_write >= self.heartbeat:
                last_write = time.monotonic()
                await event(f": heartbeat\nevent: ping\ndata: {{\"at\": \"{display.now_iso()}\"}}\n\n")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _state_event(state: dict) -> str:
    data = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
    return f"id: {state['seq']}\nevent: state\ndata: {data}\n\n"
