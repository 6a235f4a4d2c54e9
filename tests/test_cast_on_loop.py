"""A secret cast answered on the ASGI worker's event loop (web/cast_on_loop.py) is decided as on
Flask's threads (web/cast_endpoint.py): the same receipts, retries, refusals and bytes; the
batch is stored on the group commit's writer thread and each answer waits for its COMMIT; a
named vote's cast, or a round this process does not know yet, goes on to Flask."""
from __future__ import annotations

import asyncio
import json
import threading

from helpers_live import setup_sitting
from terminal_support import all_casts, events, forge, get_ballot, refusals

from ballot_service.crypto import tablet
from ballot_service.domain import group_commit, intake, terminal_casts
from ballot_service.formats.ballot_set import receipt_code
from ballot_service.web import asgi, cast_on_loop


def _scope(body: bytes, path: str = "/api/terminal/cast", headers=()) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()), *headers],
            "client": ("127.0.0.1", 5000), "server": ("localhost", 80)}


async def _post(app, body: bytes, headers=()) -> tuple[int, bytes]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await app(_scope(body, headers=headers), receive, send)
    return sent[0]["status"], sent[1]["body"]


def _body(ballot: dict, marks: dict, retry_id: str | None = None) -> bytes:
    return json.dumps({**ballot, "marks": marks, "retry_id": retry_id or tablet.new_retry_id()}).encode()


class _Counting:
    """Counts which path answered: the loop (prepare_known_secret gave a job) or Flask."""

    def __init__(self, monkeypatch):
        self.loop = self.flask = 0
        real_known, real_prepare = terminal_casts.prepare_known_secret, terminal_casts.prepare

        def known(*a, **k):
            job = real_known(*a, **k)
            self.loop += job is not None
            return job

        def prepare(*a, **k):
            self.flask += 1
            return real_prepare(*a, **k)

        monkeypatch.setattr(terminal_casts, "prepare_known_secret", known)
        monkeypatch.setattr(terminal_casts, "prepare", prepare)


def test_secret_casts_on_the_loop_decide_as_on_flask(app, api, monkeypatch):
    s = setup_sitting(api, members=30)
    ballots = [get_ballot(api, s.creds[no]) for no in s.members]
    counting = _Counting(monkeypatch)
    batches = []
    real_run = group_commit.run_batch

    def run_batch(engine, jobs, store, commit):
        batch = []

        def stored(db, jobs):
            batch[:] = jobs
            store(db, jobs)

        def committed(db):
            commit(db)
            batches.append(len(batch))

        return real_run(engine, jobs, stored, committed)

    monkeypatch.setattr(group_commit, "run_batch", run_batch)
    ag = asgi.create_asgi_app(app, threads=2)
    client = app.test_client()
    # The first cast goes through Flask (the round is not known yet) and teaches the process the round.
    first = client.post("/api/terminal/cast", data=_body(ballots[0], {"motion": "for"}), content_type="application/json")
    assert first.status_code == 201 and counting.flask == 1

    async def many():
        retry = "retry-id-of-cast-1-" + "x" * 8
        bodies = [_body(b, {"motion": "against"}, retry if i == 0 else None) for i, b in enumerate(ballots[1:])]
        got = await asyncio.gather(*(_post(ag, body) for body in bodies))
        again = await _post(ag, bodies[0])  # the same submission again (its answer was lost): the receipt
        other = await _post(ag, _body(ballots[1], {"motion": "for"}))  # a used serial, another retry id: 409
        return got, again, other

    got, again, other = asyncio.run(many())
    assert counting.loop == len(ballots) + 1 and counting.flask == 1  # every cast after the first on the loop
    assert [st for st, _ in got] == [201] * (len(ballots) - 1)
    receipts = [json.loads(b) for _, b in got]
    stored = {c.serial: c.receipt for c in all_casts(app)}
    assert len(stored) == len(ballots)
    assert all(receipt_code(stored[r["serial"]]) == r["receipt"] for r in receipts)
    assert again[0] == 200 and json.loads(again[1]) == {**receipts[0], "repeated": True}
    assert other[0] == 409 and json.loads(other[1])["errors"][0]["errorType"] == "BallotRefused"
    assert max(batches) > 1  # casts waiting on the loop share a batch
    assert sum(json.loads(e.data)["count"] for e in events(app, "casts_accepted")) == len(ballots)
    assert refusals(app).get("reused") == 1


def _one_cast_through_flask(app, api):
    """A secret vote of three with one cast sent through Flask (the worker learns the round):
    the sitting, a test client, and the other two ballots."""
    s = setup_sitting(api, members=3)
    b0, *others = (get_ballot(api, s.creds[no]) for no in s.members)
    client = app.test_client()
    assert client.post("/api/terminal/cast", data=_body(b0, {"motion": "for"}),
                       content_type="application/json").status_code == 201
    return s, client, others


def test_refusals_on_the_loop_are_flasks_bytes(app, api, monkeypatch):
    s, client, (b1, b2) = _one_cast_through_flask(app, api)
    counting = _Counting(monkeypatch)
    ag = asgi.create_asgi_app(app, threads=2)
    cases = [
        _body(b1, {"motion": "maybe"}),                       # a mark that is not one
        _body(b1, {"nobody": "for"}),                          # not a candidate
        _body(forge(b2), {"motion": "for"}),                   # not the round's signature
        _body(b2, {"motion": "for"}, retry_id="short"),        # a bad retry id
        json.dumps({**b2, "marks": {"motion": "for"}, "retry_id": tablet.new_retry_id(),
                    "serial": "Z" * 32}).encode(),             # a malformed ballot
    ]
    for body in cases:
        on_loop = asyncio.run(_post(ag, body))
        on_flask = client.post("/api/terminal/cast", data=body, content_type="application/json")
        assert on_loop == (on_flask.status_code, on_flask.data), body
        assert on_loop[0] >= 400
    assert counting.loop == len(cases) - 1  # all but the bad retry id (refused before its job is made)
    assert len(all_casts(app)) == 1


def test_a_closed_round_refuses_on_the_loop(app, api, monkeypatch):
    s, _, (b1, _) = _one_cast_through_flask(app, api)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    counting = _Counting(monkeypatch)
    status, body = asyncio.run(_post(asgi.create_asgi_app(app, threads=2), _body(b1, {"motion": "for"})))
    assert counting.loop == 1 and status == 409 and json.loads(body)["errors"]
    assert len(all_casts(app)) == 1


def test_a_named_vote_goes_to_flask(app, api, monkeypatch):
    s = setup_sitting(api, members=2, secret=False)
    b0, b1 = (get_ballot(api, s.creds[no]) for no in s.members)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {s.creds[s.members[0]]}"}
    assert client.post("/api/terminal/cast", data=_body(b0, {"motion": "for"}), headers=auth,
                       content_type="application/json").status_code == 201
    counting = _Counting(monkeypatch)
    ag = asgi.create_asgi_app(app, threads=2)
    status, _ = asyncio.run(_post(ag, _body(b1, {"motion": "for"})))  # no credential: Flask's 401
    assert status == 401 and counting.loop == 0
    status, _ = asyncio.run(_post(ag, _body(b1, {"motion": "for"}),
                                  headers=[(b"authorization", f"Bearer {s.creds[s.members[1]]}".encode())]))
    assert status == 201 and counting.loop == 0 and counting.flask == 1


def test_group_commit_nowait_notifies_after_the_outcome(app, api, monkeypatch):
    s = setup_sitting(api, members=2)
    db = app.extensions["ballot_sessionmaker"]()
    jobs = [terminal_casts.prepare(db, app.config["SETTINGS"], {**get_ballot(api, s.creds[no]), "marks": {"motion": "for"},
                                                                "retry_id": tablet.new_retry_id()})
            for no in s.members]
    db.close()

    def commit_fails(db):
        raise OSError("fsync failed")

    monkeypatch.setattr(intake, "_commit_batch", commit_fails)
    told = threading.Semaphore(0)
    seen = []

    def notify_of(job):
        def notify():
            seen.append((job.result, job.error))
            told.release()
        return notify

    for job in jobs:
        intake.submit_nowait(app.extensions["ballot_engine"], job, notify_of(job))
    assert all(told.acquire(timeout=30) for _ in jobs)
    assert [r for r, _ in seen] == [None, None] and all(isinstance(e, OSError) for _, e in seen)
    assert all_casts(app) == []


def test_a_process_that_signed_the_rounds_ballots_takes_its_first_cast_on_the_loop(app, api, monkeypatch):
    # The opening wave's first casts used to queue for Flask's threads (the benchmark's p99):
    # blind-signing a round's ballot teaches the process the round's key and facts.
    s = setup_sitting(api, members=2)
    b0 = get_ballot(api, s.creds[s.members[0]])
    counting = _Counting(monkeypatch)
    status, body = asyncio.run(_post(asgi.create_asgi_app(app, threads=2), _body(b0, {"motion": "for"})))
    assert status == 201 and counting.loop == 1 and counting.flask == 0, body
    assert len(all_casts(app)) == 1


def test_a_flood_waits_on_the_loop_only_up_to_a_bound(app, api, monkeypatch):
    """An attacker's flood of casts (junk ones too: each is checked on the loop and queued for
    the group commit, which has no limit of its own) waits on a worker's event loop, beside its
    long-polls and event streams, only up to MAX_WAITING casts; the next goes to Flask's threads."""
    s, _, (b1, b2) = _one_cast_through_flask(app, api)
    monkeypatch.setattr(cast_on_loop, "MAX_WAITING", 2, raising=False)
    release = threading.Event()
    real_commit = intake._commit_batch

    def held_commit(db):  # the batch's COMMIT waits until the test lets it go
        release.wait(60)
        real_commit(db)

    monkeypatch.setattr(intake, "_commit_batch", held_commit)
    counting = _Counting(monkeypatch)
    casts = cast_on_loop.CastsOnLoop(app.config["SETTINGS"], app.extensions["ballot_engine"])

    async def flood():
        try:
            waiting = [asyncio.create_task(casts.answer(_body(b, {"motion": "for"}))) for b in (b1, b2)]
            await asyncio.sleep(0)  # both are checked and wait for their batch's COMMIT
            third = asyncio.create_task(casts.answer(_body(forge(b1), {"motion": "for"})))
            await asyncio.sleep(0)
            over = third.done() and third.result()
        finally:
            release.set()
        return over, await asyncio.gather(*waiting)

    over, answered = asyncio.run(flood())
    assert over is None and counting.loop == 2  # not checked on the loop: Flask's path answers it
    assert [status for status, _, _ in answered] == [201, 201]
    assert casts.waiting == 0


def test_cast_answers_have_the_api_headers_on_both_paths(app, api):
    """Every /api/ answer is Cache-Control: no-store and nosniff (web/security.py); the cast
    answers are served below Flask's hooks, on the loop and on Flask's threads alike."""
    s, client, (b1, b2) = _one_cast_through_flask(app, api)
    ag = asgi.create_asgi_app(app, threads=2)

    async def on_loop(body: bytes) -> dict:
        sent = []

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)

        await ag(_scope(body), receive, send)
        return {k.decode().lower(): v.decode() for k, v in sent[0]["headers"]}

    for body in (_body(b1, {"motion": "for"}), _body(forge(b2), {"motion": "for"})):  # a receipt, a refusal
        loop_headers = asyncio.run(on_loop(body))
        assert loop_headers["cache-control"] == "no-store" and loop_headers["x-content-type-options"] == "nosniff"
    flask = client.post("/api/terminal/cast", data=_body(b2, {"motion": "maybe"}), content_type="application/json")
    assert flask.status_code == 400
    assert flask.headers["Cache-Control"] == "no-store" and flask.headers["X-Content-Type-Options"] == "nosniff"


def test_operators_requests_do_not_queue_behind_the_tablets(app):
    """A hall's 3,000 tablets reach Flask in the same second when a vote closes; the
    secretariat's requests have threads of their own (FlaskOnThreads), so 计票 is answered
    while every tablet thread is busy."""
    release, entered = threading.Event(), threading.Event()
    inner = app.wsgi_app

    def blocking(environ, start_response):
        if environ["PATH_INFO"].startswith("/api/terminal/"):
            entered.set()
            release.wait(10)
        return inner(environ, start_response)

    app.wsgi_app = blocking
    ag = asgi.create_asgi_app(app, threads=1)

    async def get(path: str) -> int:
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        await ag({**_scope(b"", path=path), "method": "GET"}, receive, send)
        return sent[0]["status"]

    async def both() -> tuple:
        tablet = asyncio.ensure_future(get("/api/terminal/state"))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
        try:
            operator = await asyncio.wait_for(get("/api/admin/sessions/1/attendance"), 5)  # 401: no login
        finally:
            release.set()
        return operator, await tablet

    assert asyncio.run(both()) == (401, 401)


def test_an_oversized_cast_is_refused_before_the_rest_is_read(app):
    """A cast (or blind signature) is one ballot: a body past settings.max_body_bytes gets Flask's
    413 after at most one chunk more, not after reading up to MAX_CONTENT_LENGTH (16 MB)."""
    ag = asgi.create_asgi_app(app, threads=1)
    chunk = b"x" * 16384
    limit = app.config["SETTINGS"].max_body_bytes

    async def post(path: str) -> tuple:
        reads, sent = [], []

        async def receive():
            reads.append(1)
            return {"type": "http.request", "body": chunk, "more_body": len(reads) < 1024}

        async def send(message):
            sent.append(message)

        await ag(_scope(b"", path=path), receive, send)
        return len(reads), sent[0]["status"], json.loads(sent[1]["body"])

    for path in ("/api/terminal/cast", "/api/terminal/blind-sign"):
        reads, status, body = asyncio.run(post(path))
        assert status == 413 and reads <= limit // len(chunk) + 1
        assert body["errors"][0]["errorType"] == "PayloadTooLarge" and str(limit) in body["errors"][0]["message"]
