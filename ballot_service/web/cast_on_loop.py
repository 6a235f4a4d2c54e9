"""POST /api/terminal/cast of a secret vote, answered on the ASGI worker's event loop (web/asgi.py).

Under ASGI every other request runs on one of the worker's threads, and so did a cast: a
thread each, held while the cast waited for its batch's COMMIT. A batch then held at most one
cast per thread (16), so a wave of casts was committed 16 at a time while the rest queued for a
thread, and the threads took turns with Python's GIL (benchmarks/bench_casts.py: the p99).
Here a secret cast whose round this process already knows (its announced key and facts cached:
every cast after the round's first few) does its step 1 on the loop — parse, RSA-PSS check,
marks, sealing, the same functions as cast_endpoint.py — and waits for its batch as a future:
batches are stored on the group commit's writer thread (domain/group_commit.py) and hold every
cast queued meanwhile (up to MAX_BATCH). The receipt is sent only after the batch's durable
COMMIT, as before. Everything else — a named vote (its credential is read from the database),
a round not yet known, a ballot set — returns None here and goes to
Flask's thread pool (cast_endpoint.CastEndpoint), which answers as it always has.

Bounded: at most MAX_WAITING casts wait on the loop at once. A flood of casts (junk included:
each costs a signature check on the loop and a job in the group commit's queue, which has no
limit of its own) would otherwise queue as many as the server accepts connections, and hold
the loop that also answers the long-polls and the screens' event streams; beyond the bound a
cast takes Flask's path, whose threads bound it as before.
"""
from __future__ import annotations

import asyncio
import logging

from ballot_service.domain import group_commit, intake, terminal_casts
from ballot_service.errors import BallotError
from ballot_service.web.cast_endpoint import ANSWER_HEADERS, answer_json
from ballot_service.web.common import error_body, field, parse_json_object

log = logging.getLogger(__name__)

MAX_WAITING = 8 * group_commit.MAX_BATCH  # casts waiting on one worker's loop for their batch


class CastsOnLoop:
    """The loop's cast answers of one worker: `answer(body)` -> (status, headers, body) or None."""

    def __init__(self, settings, engine) -> None:
        self.settings, self.engine = settings, engine
        self.waiting = 0  # only the loop's thread changes it

    async def answer(self, body: bytes) -> tuple[int, list, bytes] | None:
        """The answer to a cast's `body` (at most max_body_bytes: web/asgi.py read it), or None."""
        if self.waiting >= MAX_WAITING:
            return None  # a flood: Flask's threads take the rest (module docstring)
        self.waiting += 1
        try:
            return await self._cast(body)
        finally:
            self.waiting -= 1

    async def _cast(self, body: bytes) -> tuple[int, list, bytes] | None:
        try:
            data = parse_json_object(body)
            field(data, "round_ref", str)  # the checks CastEndpoint makes first, in its order
            field(data, "marks", dict)
            job = terminal_casts.prepare_known_secret(self.engine, self.settings, data)
            if job is None:
                return None
            await until_notified(lambda notify: intake.submit_nowait(self.engine, job, notify))
            receipt = intake.stored_outcome(job)
            return loop_answer(200 if receipt.repeated else 201, receipt.as_dict())
        except BallotError as exc:  # refusals are counted and audited by their batch's COMMIT
            return loop_answer(exc.status, {"errors": [exc.to_dict()]})
        except Exception:
            log.exception("cast intake failed")
            return loop_answer(500, error_body("the server could not store this cast; send it again",
                                           "InternalServerError"))

async def until_notified(queue) -> None:
    """Queue a job with `queue(notify)` and wait, on the loop, until the group commit calls
    `notify()` (on its writer thread) once the job's batch is committed or refused."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def settle() -> None:
        if not done.done():  # the request may have been cancelled (the tablet went away)
            done.set_result(None)

    def notify() -> None:  # on the writer thread
        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop is closed: the server is stopping
            pass

    queue(notify)
    await done


def loop_answer(status: int, payload) -> tuple[int, list, bytes]:
    """(status, headers, body) of an answer made on the loop: Flask's JSON bytes and API headers."""
    body = answer_json(payload)  # CastEndpoint's bytes and headers
    return status, [*ANSWER_HEADERS, ("Content-Length", str(len(body)))], body
