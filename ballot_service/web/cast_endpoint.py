"""POST /api/terminal/cast, served in front of Flask (a WSGI middleware).

Body: {"round_ref", "serial", "prefix", "signature", "marks", "retry_id"} (a blind-signed
ballot, crypto/blind_ballots.py). A secret vote's cast needs no terminal credential: the
endpoint does not read the Authorization header at all for it, so nothing about the
sending tablet can be kept with the cast. A named (记名) vote's cast must carry the
member's terminal credential (the cast is bound to that member).

Every seat terminal's vote takes this one path, up to a few thousand in the first minute
of a vote, so it answers without Flask's request machinery: Flask's routing, request and
response objects, hooks and teardown cost about a third of the server's CPU per cast
(measured with py-spy; benchmarks/bench_casts.py). Everything that decides anything is
the same code the rest of the service uses: the credential check (domain.terminals), field
reading (web.field), intake.accept, the error shape (errors.BallotError.to_dict) and the
refusal commit rule (web.finish_refusal's). Any other path or method goes on to Flask.
Under `serve` (ASGI) a secret cast of a round the worker knows is answered before this, on
the event loop (cast_on_loop.py, the same steps); this serves the rest, and plain WSGI.

POST /api/terminal/cast-set takes a ballot set's casts at once: {"casts": [cast, ...]}, one
per open round of the set, each exactly the body above (its own serial, signature, retry id
and receipt hash: nothing in common). Each is stored as its own cast, one after the other, so
the stored casts are what separate submissions would have left. The answer is 201 (200 if
every cast was a retry) with {"receipts": [receipt, ...]} in the order sent, or the first
refusal's error (with "results": each cast's receipt or errors); a resend of the same body
gets the receipts already given.

The answers equal the Flask API's: 201 with the receipt (200 for a retry of the same
submission), else {"errors": [{message, errorType, where, message_zh}]} with the error's
status; for a named vote 401 without a terminal credential and 403 for a counting
station's; 405 for another
method, 413 over settings.max_body_bytes, 400 for a body that is not a JSON object.
"""
from __future__ import annotations

import json
import logging
from http import HTTPStatus

from ballot_service.domain import terminal_casts
from ballot_service.domain.terminals import authenticate_terminal
from ballot_service.errors import BallotError, Forbidden, InvalidInput, Unauthorized
from ballot_service.vocab import Role, TerminalKind
from ballot_service.web.common import error_body, field, finish_refusal, parse_json_object

PATH = "/api/terminal/cast"
SET_PATH = "/api/terminal/cast-set"
MAX_SET = 16  # casts in one set submission (a ballot paper holds a few elections)
# Secret casts are anonymous; named ones check a terminal credential (tests/test_roles.py calls it as
# every caller).
ROLES = (Role.PUBLIC,)

# What security.secure_headers gives every other /api/ answer (these are answered below Flask).
ANSWER_HEADERS = (("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                  ("X-Content-Type-Options", "nosniff"))

log = logging.getLogger(__name__)

_NO_CREDENTIAL = Unauthorized("a terminal credential is required (Authorization: Bearer …)",
                              zh="需要终端凭据（Authorization: Bearer …）")


class _PlainHttpError(Exception):
    """A plain HTTP error that is not a domain error (405, 413)."""

    def __init__(self, status: int, message: str, error_type: str, headers=()):
        super().__init__(message)
        self.status, self.body, self.headers = status, error_body(message, error_type), list(headers)


def answer_json(obj) -> bytes:
    # Flask's own JSON form (sorted keys, compact, ASCII, a final newline), so the two
    # paths answer byte for byte alike.
    return (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode("ascii")


class CastEndpoint:
    """WSGI middleware: serves PATH itself and hands every other request to `wsgi_app`."""

    def __init__(self, wsgi_app, settings, sessionmaker):
        self.wsgi_app = wsgi_app
        self.settings = settings
        self.sessionmaker = sessionmaker

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") not in (PATH, SET_PATH):
            return self.wsgi_app(environ, start_response)
        status, body, headers = self._answer(environ)
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       [*ANSWER_HEADERS, ("Content-Length", str(len(body)))] + headers)
        return [body]

    def _answer(self, environ) -> tuple[int, bytes, list]:
        try:
            if environ.get("REQUEST_METHOD") != "POST":
                raise _PlainHttpError(405, "The method is not allowed for the requested URL.", "MethodNotAllowed",
                              [("Allow", "POST")])
            db = self.sessionmaker()
            try:
                cast = self._cast_set if environ["PATH_INFO"] == SET_PATH else self._cast
                status, payload = cast(db, environ)
                if db.in_transaction():  # PostgreSQL: the cast is in the request's transaction
                    db.commit()
                return status, answer_json(payload), []
            except BallotError as exc:
                finish_refusal(exc, db)
                raise
            except BaseException:
                db.rollback()
                raise
            finally:
                db.close()
        except BallotError as exc:
            return exc.status, answer_json({"errors": [exc.to_dict()], **getattr(exc, "extra", {})}), []
        except _PlainHttpError as ans:
            return ans.status, answer_json(ans.body), ans.headers
        except Exception:
            log.exception("cast intake failed")
            return 500, answer_json(error_body("the server could not store this cast; send it again",
                                         "InternalServerError")), []

    def _cast(self, db, environ) -> tuple[int, dict]:
        data = parse_json_object(self._body(environ))
        receipt = terminal_casts.accept(db, self.settings, data, terminal_id=self._named_terminal(db, environ, data))
        return (200 if receipt.repeated else 201), receipt.as_dict()

    def _cast_set(self, db, environ) -> tuple[int, dict]:
        casts = field(parse_json_object(self._body(environ)), "casts", list)
        if not 1 <= len(casts) <= MAX_SET or not all(isinstance(c, dict) for c in casts):
            raise InvalidInput(f"casts must be a list of 1 to {MAX_SET} casts", where="casts",
                               zh=f"casts 须为 1 至 {MAX_SET} 张选票的列表")
        if len({c.get("round_ref") for c in casts}) != len(casts):
            raise InvalidInput("one cast per round of the set", where="casts", zh="选举票组每一轮次只能提交一张选票")
        results, first_error = [], None
        for data in casts:  # each its own intake, as if sent alone
            try:
                receipt = terminal_casts.accept(db, self.settings, data, terminal_id=self._named_terminal(db, environ, data))
                results.append(receipt)
            except BallotError as exc:
                finish_refusal(exc, db)
                results.append(exc)
                first_error = first_error or exc
        if first_error is not None:
            first_error.extra = {"results": [r.to_dict() if isinstance(r, BallotError) else r.as_dict()
                                             for r in results]}
            raise first_error
        return (200 if all(r.repeated for r in results) else 201), {"receipts": [r.as_dict() for r in results]}

    def _named_terminal(self, db, environ, data: dict) -> int | None:
        """The casting terminal of a named (记名) vote's cast; None (and nothing read) for a secret one."""
        field(data, "round_ref", str)
        field(data, "marks", dict)
        if not terminal_casts.is_named(db, data["round_ref"]):
            return None
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Bearer "):
            raise _NO_CREDENTIAL
        term = authenticate_terminal(db, header[7:].strip())
        if term.kind == TerminalKind.COUNTING_STATION:
            raise Forbidden(f"a {term.kind} credential cannot call this endpoint", zh="此类终端不能提交选票")
        return term.id

    def _body(self, environ) -> bytes:
        """The request body, at most settings.max_body_bytes (413 beyond)."""
        limit = self.settings.max_body_bytes
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise InvalidInput("Content-Length is not a number", where="headers", zh="请求头 Content-Length 不是数字") from None
        if length:
            raw = environ["wsgi.input"].read(length) if length <= limit else None
        elif environ.get("wsgi.input_terminated"):  # chunked: the server ends the stream
            raw = environ["wsgi.input"].read(limit + 1)
        else:
            raw = b""
        if raw is None or len(raw) > limit:
            raise _PlainHttpError(413, f"request body is larger than {limit} bytes", "PayloadTooLarge")
        return raw
