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

from ballot_service.domain import tablet_setup
from ballot_service.web import cast_endpoint, display, issue_on_loop, terminal_api
from ballot_service.web.cast_on_loop import CastsOnLoop
from ballot_service.web.common import error_body
from ballot_service.web.head_watcher import HeadWatcher
from ballot_service.web.screen_states import ScreenStates
from ballot_service.web.seat_wake import SeatWake

EVENTS_PATH = re.compile(r"^/display/([0-9]{1,10})/events$")
STATE_PATH = "/api/terminal/state"  # a seat tablet's long-poll: ?wait=<the ETag it holds>
# An unchanged state is answered 304 after this (the page asks again at once). Last seen is
# noted as a long-poll begins (by Flask, or seat_wake.start; written at most every SEEN_EVERY_S):
# holding longer than ONLINE_S - SEEN_EVERY_S would make a waiting tablet look offline.
HOLD_SECONDS = float(tablet_setup.ONLINE_S - tablet_setup.SEEN_EVERY_S - 3)
# While a vote is open no last seen is written (tablet_setup.py), so a tablet's long-poll is held
# longer (the page gives up after 40 s): 3,000 tablets ask Flask 100 times a second, not 250.
VOTE_HOLD_SECONDS = 30.0
QUIET_SECONDS = 3.0  # a change that is not urgent (a check-in) is told after this (the old poll)
TABLET_PATHS = "/api/terminal/"  # the seat tablets' requests: FlaskOnThreads' main pool
OPERATOR_THREADS = 4  # everyone else's requests (FlaskOnThreads)
# Headers of the screen's request that Flask's answer may depend on; nothing else is passed on.
FORWARDED = (b"cookie", b"host", b"accept-language", b"x-forwarded-for", b"x-forwarded-proto",
             b"x-forwarded-host", b"user-agent")


def create_asgi_app(flask_app: Flask, threads: int = 16):
    """The ASGI callable: event streams here, the rest to `flask_app` on `threads` threads."""
    wsgi = FlaskOnThreads(flask_app, threads)
    watcher = HeadWatcher(flask_app)
    screens = ScreenStates(flask_app)
    watcher.on_moved(screens.build_ahead)
    seats = SeatWake(flask_app)
    casts = CastsOnLoop(flask_app.config["SETTINGS"], flask_app.extensions["ballot_engine"])
    issuing = issue_on_loop.IssueOnLoop(flask_app.config["SETTINGS"], flask_app.extensions["ballot_engine"],
                                        seats, watcher)
    cfg = flask_app.config
    settings = cfg["SETTINGS"]

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, watcher)
            return
        if scope["type"] == "http" and scope["method"] == "GET":
            m = EVENTS_PATH.match(scope["path"])
            if m:
                stream = EventStream(flask_app, watcher, screens, scope, int(m.group(1)),
                                     poll=cfg.get("DISPLAY_POLL_SECONDS", display.POLL_SECONDS),
                                     heartbeat=cfg.get("DISPLAY_HEARTBEAT_SECONDS", display.HEARTBEAT_SECONDS),
                                     lifetime=cfg.get("DISPLAY_STREAM_SECONDS", display.STREAM_SECONDS))
                await stream.run(receive, send)
                return
            if scope["path"] == STATE_PATH and b"wait=" in scope.get("query_string", b""):
                await long_poll(wsgi, watcher, seats, scope, send)
                return
            if scope["path"] == issue_on_loop.ROUND_KEY_PATH:
                await _send_whole(send, *(await issuing.round_key(scope) or await wsgi.answer(scope)))
                return
        # A tablet's cast or blind signature is one ballot: a larger body is refused before more
        # of it is read (16 MB each, from anyone on the hall's network, otherwise).
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == cast_endpoint.PATH:
            body = await wsgi.read_body(receive, send, settings.max_body_bytes)
            if body is not None:  # else answered (413) or gone
                await _send_whole(send, *(await casts.answer(body) or await wsgi.answer(scope, body)))
            return
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == issue_on_loop.BLIND_SIGN_PATH:
            body = await wsgi.read_body(receive, send, settings.max_body_bytes)
            if body is not None:
                await _send_whole(send, *(await issuing.blind_sign(scope, body) or await wsgi.answer(scope, body)))
            return
        await wsgi(scope, receive, send)

    return app


class FlaskOnThreads:
    """Every other request: Flask on a pool of `threads` threads, in one hand-off each.

    The body is read on the event loop (up to MAX_CONTENT_LENGTH, which Flask enforces too),
    the request runs on a thread, and the whole answer comes back at once. a2wsgi's
    WSGIMiddleware crosses between loop and thread for every read and every write instead,
    which doubled the server's CPU per cast (1.1 against 0.5 ms, benchmarks/bench_casts.py);
    its environ builder is used as is.

    Two pools: the seat tablets' requests (/api/terminal/…) on `threads` threads, everyone
    else's (the secretariat's console, the counting station, pages) on OPERATOR_THREADS of
    their own. When a vote closes, 3,000 tablets' next long-polls reach Flask in the same
    second; in one queue the secretariat's 计票, 生成决议 and 公布 waited behind them for
    2-5 s (benchmarks/bench_hall.py)."""

    def __init__(self, flask_app: Flask, threads: int) -> None:
        self.flask_app = flask_app
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="flask")
        self.operators = ThreadPoolExecutor(OPERATOR_THREADS, thread_name_prefix="flask-operators")
        self.limit = int(flask_app.config.get("MAX_CONTENT_LENGTH") or 16 * 1024 * 1024)

    async def __call__(self, scope, receive, send) -> None:
        body = await self.read_body(receive, send)
        if body is not None:
            await _send_whole(send, *await self.answer(scope, body))

    async def read_body(self, receive, send, limit: int | None = None) -> bytes | None:
        """The request's body, at most `limit` bytes (default MAX_CONTENT_LENGTH); None when the
        client went away or it was too large (413 sent, as Flask words it, and no more read)."""
        limit = self.limit if limit is None else limit
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await _send_whole(send, 413, [("Content-Type", "application/json")], json.dumps(error_body(
                    f"request body is larger than {limit} bytes", "PayloadTooLarge")).encode())
                return None
        return bytes(body)

    async def answer(self, scope, body: bytes = b"") -> tuple[int, list, bytes]:
        """Flask's (status, headers, body) for the request of `scope`, run on a thread."""
        return (await self.answer_seat(scope, body))[:3]

    async def answer_seat(self, scope, body: bytes = b"") -> tuple[int, list, bytes, tuple | None]:
        """answer(), and the seat tablet the state endpoint answered (terminal_api.SEAT_ENVIRON)."""
        environ = build_environ(scope, io.BytesIO(body))
        pool = self.pool if scope["path"].startswith(TABLET_PATHS) else self.operators
        answer = await asyncio.get_running_loop().run_in_executor(pool, self._run, environ)
        return (*answer, environ.get(terminal_api.SEAT_ENVIRON))

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


async def long_poll(wsgi: FlaskOnThreads, watcher: HeadWatcher, seats: SeatWake, scope, send) -> None:
    """GET /api/terminal/state?wait=<ETag>: Flask answers (a refusal, or the state when its tag
    is no longer the one the tablet holds) at once — or, for a seat Flask authenticated before,
    the sitting's read for the current change does (seat_wake.start); otherwise the request
    waits on the event loop, holding no thread, and is answered again when the watcher sees a
    change a tablet shows: at once for an urgent one (a vote opened; closed: after the screens,
    head_watcher.SCREENS_FIRST_S, spread over TABLETS_SPREAD_S), after
    QUIET_SECONDS held for the rest (a check-in elsewhere). After HOLD_SECONDS
    (VOTE_HOLD_SECONDS while a vote is open) with no change: 304. A cast batch wakes nobody;
    the state is served from the per-state-version cache (terminal_api.py), and a woken tablet
    is answered from one read per change (seat_wake.py)."""
    try:
        await asyncio.wait_for(watcher.ready(), 2.0)
    except asyncio.TimeoutError:
        pass  # the database is away: answer as a plain poll would
    started = time.monotonic()
    marks = (watcher.changes, watcher.urgent)
    first = await seats.start(scope, marks) if watcher.fresh() else None
    if first is not None:  # a seat Flask authenticated before: no thread (seat_wake.py)
        status, headers, body, seat = first
    else:
        status, headers, body, seat = await wsgi.answer_seat(scope)
        if seat:  # its next long-polls, round key and blind signature are answered on the loop
            seats.learn(scope, seat, headers)
    while status == 304:
        held = time.monotonic() - started
        hold = VOTE_HOLD_SECONDS if seat and seat[3] else HOLD_SECONDS
        now_marks = (watcher.changes, watcher.urgent)
        # a change is answered before the hold's end is: a 304 would say "unchanged" of a close
        if now_marks[1] != marks[1] or (now_marks[0] != marks[0] and held >= QUIET_SECONDS):
            marks = now_marks
            woken = await seats.answer(seat, marks, scope, headers) if seat else None
            if woken is None:
                status, headers, body, seat = await wsgi.answer_seat(scope)
            else:
                status, headers, body = woken
            continue
        if held >= hold:
            break
        limit = hold - held if held >= QUIET_SECONDS or now_marks == marks else QUIET_SECONDS - held
        await watcher.wait_tablets(limit)
    await _send_whole(send, status, headers, body)


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


class EventStream:
    """One open screen's Server-Sent Events."""

    def __init__(self, flask_app: Flask, watcher: HeadWatcher, screens: ScreenStates, scope: dict,
                 sitting_id: int, *, poll: float, heartbeat: float, lifetime: float) -> None:
        self.flask_app, self.watcher, self.screens, self.scope = flask_app, watcher, screens, scope
        self.sitting_id, self.state_path = sitting_id, f"/display/{sitting_id}/state"
        self.verify_url = self.screen_key = None
        self.poll, self.heartbeat, self.lifetime = poll, heartbeat, lifetime
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])
                        if k.lower() in FORWARDED}
        self.closed = False

    def _verify_url_maker(self):
        """The /verify/<record> address maker of this screen's request (its host), as Flask
        makes it for the state endpoint."""
        scheme = self.scope.get("scheme", "http")
        host = self.headers.get("host") or "localhost"
        with self.flask_app.test_request_context(self.state_path, base_url=f"{scheme}://{host}", headers=self.headers):
            return display.verify_url_maker()

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
        self.verify_url = await asyncio.to_thread(self._verify_url_maker)
        watch_disconnect = asyncio.create_task(self._watch_disconnect(receive))
        self.screen_key = self.screens.opened(self.sitting_id, self.verify_url)
        try:
            await self._events(send, body)
        except OSError:
            pass  # the screen went away mid-write
        finally:
            self.screens.closed(self.screen_key)
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

        started = last_write = checked = time.monotonic()
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
            if time.monotonic() - checked >= self.heartbeat:
                checked = time.monotonic()
                status, _, _ = await asyncio.to_thread(self._state)
                if status != 200:  # the login ended or the sitting is gone: the page reconnects
                    await event("event: bye\ndata: {}\n\n")
                    break
            if new_seq != seq:
                seq = new_seq
                # Built once per change for every open screen of the sitting, most often ahead
                # on the watcher's thread (ScreenStates); else here on a thread.
                state = (self.screens.ready(self.screen_key, seq)
                         or await asyncio.to_thread(self.screens.get, self.sitting_id, self.verify_url, seq))
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
