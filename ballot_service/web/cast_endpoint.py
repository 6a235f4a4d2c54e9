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
# Secret casts are anonymous; named ones check a terminal credential (tests/test_roles.py calls it as
# every caller).
ROLES = (Role.PUBLIC,)

log = logging.getLogger(__name__)

_NO_CREDENTIAL = Unauthorized("a terminal credential is required (Authorization: Bearer …)",
                              zh="需要终端凭据（Authorization: Bearer …）")


class _Answer(Exception):
    """A plain HTTP error that is not a domain error (405, 413)."""

    def __init__(self, status: int, message: str, error_type: str, headers=()):
        super().__init__(message)
        self.status, self.body, self.headers = status, error_body(message, error_type), list(headers)


def _json(obj) -> bytes:
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
        if environ.get("PATH_INFO") != PATH:
            return self.wsgi_app(environ, start_response)
        status, body, headers = self._answer(environ)
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))] + headers)
        return [body]

    def _answer(self, environ) -> tuple[int, bytes, list]:
        try:
            if environ.get("REQUEST_METHOD") != "POST":
                raise _Answer(405, "The method is not allowed for the requested URL.", "MethodNotAllowed",
                              [("Allow", "POST")])
            db = self.sessionmaker()
            try:
                status, payload = self._cast(db, environ)
                if db.in_transaction():  # PostgreSQL: the cast is in the request's transaction
                    db.commit()
                return status, _json(payload), []
            except BallotError as exc:
                finish_refusal(exc, db)
                raise
            except BaseException:
                db.rollback()
                raise
            finally:
                db.close()
        except BallotError as exc:
            return exc.status, _json({"errors": [exc.to_dict()]}), []
        except _Answer as ans:
            return ans.status, _json(ans.body), ans.headers
        except Exception:
            log.exception("cast intake failed")
            return 500, _json(error_body("the server could not store this cast; send it again",
                                         "InternalServerError")), []

    def _cast(self, db, environ) -> tuple[int, dict]:
        data = parse_json_object(self._body(environ))
        field(data, "round_ref", str)
        field(data, "marks", dict)
        terminal_id = None
        if terminal_casts.is_named(db, data["round_ref"]):
            header = environ.get("HTTP_AUTHORIZATION", "")
            if not header.startswith("Bearer "):
                raise _NO_CREDENTIAL
            term = authenticate_terminal(db, header[7:].strip())
            if term.kind == TerminalKind.COUNTING_STATION:
                raise Forbidden(f"a {term.kind} credential cannot call this endpoint", zh="此类终端不能提交选票")
            terminal_id = term.id
        receipt = terminal_casts.accept(db, self.settings, data, terminal_id=terminal_id)
        return (200 if receipt.repeated else 201), receipt.as_dict()

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
            raise _Answer(413, f"request body is larger than {limit} bytes", "PayloadTooLarge")
        return raw
