"""A seat tablet's round key and blind signature (GET /api/terminal/round-key, POST
/api/terminal/blind-sign), answered on the ASGI worker's event loop (web/asgi.py).

When a vote opens, every tablet of the hall asks for its blind signature within a second or
two (the round key now comes with the state that told it of the opening, terminal_api
_item_view; the round-key request stays for any client that asks). Through
Flask each took a thread, an ORM session and about five queries (the credential, the
terminal's issuance row, the round and its key, presence), 5-7 ms of CPU a tablet on two
cores shared with the casts that follow: 3,000 tablets held their ballots 15-25 s after
开始表决 (benchmarks/bench_hall.py). Here both are answered from what the process read
once for the change that opened the vote (web/seat_wake.py: the sitting's snapshot, its
revoked terminals, the announced keys and the open rounds' wrapped private keys), for a
credential Flask authenticated when the tablet's long-poll began (SeatWake.learn):

- round key: the announcement, the bytes Flask sends;
- blind signature: the same steps as issuance.blind_sign_for_terminal (issuance.sign_for_seat:
  the RSA operation with the round's key, unwrapped once per snapshot), and the count is
  taken in the process's issuance group commit, which finds the terminal's member and refuses
  under the write lock exactly as Flask's path does (absent, already issued; no vote open for
  this terminal: Flask answers, as it names the round open now). The signature is sent only
  after that batch's durable COMMIT. One RSA operation per seat and round per change: a
  resend (or a flood from one credential) goes to Flask, which refuses a member already
  issued before any RSA operation, unless it is the very blinded message signed for them (a
  lost answer asked again: signed again, with no count, on one of Flask's threads).

Anything else goes on to Flask, which answers as it always has: a credential this process has
not seen Flask accept, a revoked terminal (checked in every snapshot, and by the count under
the write lock: one revoked since the snapshot was read), a body that is not a JSON object
with the two strings or is over the tablets' limit, a round not in the snapshot (closed,
another sitting's), a value of the wrong length, the database away. Nothing about the request is stored or
logged, as on Flask's path.
"""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs

from sqlalchemy import select

from ballot_service.crypto import blind_rsa
from ballot_service.domain import issuance, round_facts
from ballot_service.errors import BallotError, NotFound, Unauthorized
from ballot_service.formats.encoding import b64url_encode
from ballot_service.models import Round
from ballot_service.vocab import RoundStatus
from ballot_service.web.cast_on_loop import loop_answer, until_notified
from ballot_service.web.common import error_body, parse_json_object
from ballot_service.web.head_watcher import HeadWatcher
from ballot_service.web.seat_wake import SeatWake, Snapshot

log = logging.getLogger(__name__)

ROUND_KEY_PATH = "/api/terminal/round-key"
BLIND_SIGN_PATH = "/api/terminal/blind-sign"


class IssueOnLoop:
    """One worker's loop answers: round_key(scope) and blind_sign(scope, body) give
    (status, headers, body), or None (Flask answers)."""

    def __init__(self, settings, engine, seats: SeatWake, watcher: HeadWatcher) -> None:
        self.settings, self.engine, self.seats, self.watcher = settings, engine, seats, watcher
        self._learnt: set[int] = set()  # rounds whose facts this process was taught (round_facts.learn)

    async def _seat(self, scope: dict) -> tuple[tuple, Snapshot] | None:
        seat = self.seats.seat_of(scope)
        if seat is None or not self.watcher.fresh():  # a stale snapshot could miss a revocation
            return None
        snapshot = await self.seats.snapshot(seat[1], seat[2], (self.watcher.changes, self.watcher.urgent))
        if snapshot is None or seat[0] not in snapshot.terminals or not snapshot.round_keys:  # revoked
            return None
        return seat, snapshot

    async def round_key(self, scope: dict) -> tuple[int, list, bytes] | None:
        found = await self._seat(scope)
        if found is None:
            return None
        announced = found[1].round_keys
        wanted = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("round_ref", [None])[0]
        ref = wanted or announced[0][0]
        body = next((ann for r, ann in announced if r == ref), None)
        return None if body is None else loop_answer(200, body)

    async def blind_sign(self, scope: dict, body: bytes) -> tuple[int, list, bytes] | None:
        found = await self._seat(scope)
        if found is None:
            return None
        seat, snapshot = found  # the body is at most max_body_bytes (web/asgi.py read it)
        try:
            data = parse_json_object(body)
        except BallotError:
            return None
        ref, text = data.get("round_ref"), data.get("blinded_msg")
        signer = snapshot.signers.get(ref) if isinstance(ref, str) else None
        if signer is None or signer.sitting_id != seat[1] or not isinstance(text, str):
            return None
        # One RSA operation per seat and round here: resends (a flood from one tablet included)
        # go to Flask, whose threads bound them and which refuses one already issued unsigned
        # (but for a lost answer's resend of the same blinded message, signed again uncounted).
        mine = (seat[0], signer.round_id)
        if mine in snapshot.signing:
            return None
        snapshot.signing.add(mine)
        answer = None
        try:
            answer = await self._sign(seat, snapshot, signer, text)
            return answer
        finally:  # not given, nor refused as given already (or the request went away): may ask again
            if answer is None or answer[0] not in (200, 409):
                snapshot.signing.discard(mine)

    async def _sign(self, seat, snapshot: Snapshot, signer, text: str) -> tuple[int, list, bytes] | None:
        try:
            private = snapshot.keys.get(signer.round_id)
            if private is None:  # unwrapping each time cost a tenth of the loop (the key file's checks)
                private = snapshot.keys[signer.round_id] = issuance.signer_key(self.settings, signer)
            job, sig = issuance.sign_for_seat(private, signer, seat[0], text)
        except BallotError:
            return None  # Flask names what is wrong, as always
        except Exception:  # the key would not unwrap, or the RSA check failed: Flask tries, and says
            log.exception("blind signature on the loop failed")
            return None
        try:
            await until_notified(lambda notify: issuance.count_nowait(self.engine, job, notify))
            job.outcome()
        except (Unauthorized, NotFound):
            # Revoked, or the round closed since the snapshot (or no ballot for this terminal):
            # Flask refuses, naming the round open now if any. A closed round's key is not kept.
            if await asyncio.to_thread(self._closed, signer.round_id):
                snapshot.keys.pop(signer.round_id, None)
                blind_rsa.forget_private(private.public_key())
            return None
        except BallotError as exc:  # absent, already issued: the count refused it
            return loop_answer(exc.status, {"errors": [exc.to_dict()]})
        except Exception:
            log.exception("blind signature count failed")
            return loop_answer(500, error_body("the server could not count this ballot; ask again",
                                           "InternalServerError"))
        await self._learn(signer.round_id)
        return loop_answer(200, {"blind_sig": b64url_encode(sig)})

    def _closed(self, round_id: int) -> bool:
        with self.engine.connect() as conn:
            return conn.scalar(select(Round.status).where(Round.id == round_id)) != RoundStatus.OPEN

    async def _learn(self, round_id: int) -> None:
        """Teach the process the round's facts once, as Flask's path does, so its casts take the
        loop's path from the first (web/cast_on_loop.py)."""
        if round_id not in self._learnt:
            self._learnt.add(round_id)
            await asyncio.to_thread(round_facts.learn_on, self.engine, round_id)

