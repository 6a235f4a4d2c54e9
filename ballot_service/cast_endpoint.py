"""POST /api/terminal/cast, served in front of Flask (a WSGI middleware).

Every seat terminal's vote takes this one path, up to a few thousand in the first minute
of a vote, so it answers without Flask's request machinery: Flask's routing, request and
response objects, hooks and teardown cost about a third of the server's CPU per cast
(measured with py-spy; benchmarks/bench_casts.py). Everything that decides anything is
the same code the rest of the service uses: the credential check (auth), field reading
(web.field), intake.accept, the error shape (errors.BallotError.to_dict) and the refusal
commit rule (web.finish_refusal's). Any other path or method goes on to Flask.

The answers equal the Flask API's: 201 with the receipt (200 for a retry of the same
submission), else {"errors": [{message, errorType, where, message_zh}]} with the error's
status; 401 without a terminal credential, 403 for a counting station's, 405 for another
method, 413 over settings.max_body_bytes, 400 for a body that is not a JSON object.
"""
from __future__ import annotations

import json
import logging

from . import intake
from .auth import authenticate_terminal
from .errors import BallotError, Forbidden, InvalidInput, Unauthorized
from .web import field

PATH = "/api/terminal/cast"
ROLES = ("terminal",)  # who may call it (tests/test_roles.py calls it as every caller)

log = logging.getLogger(__name__)

_NO_CREDENTIAL = Unauthorized("a terminal credential is required (Authorization: Bearer …)",
                              zh="需要终端凭据（Authorization: Bearer …）")


class _Answer(Exception):
    """A plain HTTP error that is not a domain error (405, 413, 500)."""

    def __init__(self, status: int, reason: str, message: str, error_type: str, headers=()):
        super().__init__(message)
        self.status, self.reason, self.headers = status, reason, list(headers)
        self.body = {"errors": [{"message": message, "errorType": error_type}]}


_REASONS = {200: "OK", 201: "CREATED", 400: "BAD REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN",
            404: "NOT FOUND", 409: "CONFLICT", 500: "INTERNAL SERVER ERROR"}


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
        start_response(f"{status} {_REASONS.get(status, '')}".rstrip(),
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))] + headers)
        return [body]

    def _answer(self, environ) -> tuple[int, bytes, list]:
        try:
            if environ.get("REQUEST_METHOD") != "POST":
                raise _Answer(405, "METHOD NOT ALLOWED", "The method is not allowed for the requested URL.",
                              "MethodNotAllowed", [("Allow", "POST")])
            db = self.sessionmaker()
            try:
                status, payload = self._cast(db, environ)
                if db.in_transaction():  # PostgreSQL: the cast is in the request's transaction
                    db.commit()
                return status, _json(payload), []
            except BallotError as exc:
                # As web.finish_refusal: a refusal keeps its count and audit event, nothing else.
                if getattr(exc, "commit_audit", False):
                    db.commit()
                else:
                    db.rollback()
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
            return 500, _json({"errors": [{"message": "the server could not store this cast; send it again",
                                           "errorType": "InternalServerError"}]}), []

    def _cast(self, db, environ) -> tuple[int, dict]:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Bearer "):
            raise _NO_CREDENTIAL
        term = authenticate_terminal(db, header[7:].strip())
        if term.kind == "counting_station":
            raise Forbidden(f"a {term.kind} credential cannot call this endpoint")
        data = self._json_body(environ)
        receipt = intake.accept(db, self.settings, intake.SessionRef(term.sitting_id, term.body_id),
                                field(data, "ballot", str), field(data, "marks", dict),
                                channel="terminal", terminal_id=term.id)
        return (200 if receipt.repeated else 201), receipt.as_dict()

    def _json_body(self, environ) -> dict:
        limit = self.settings.max_body_bytes
        stream = environ["wsgi.input"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise InvalidInput("Content-Length is not a number", where="headers") from None
        if length > limit:
            raise _Answer(413, "REQUEST ENTITY TOO LARGE", f"request body is larger than {limit} bytes",
                          "PayloadTooLarge")
        if length:
            raw = stream.read(length)
        elif environ.get("wsgi.input_terminated"):  # chunked: the server ends the stream
            raw = stream.read(limit + 1)
            if len(raw) > limit:
                raise _Answer(413, "REQUEST ENTITY TOO LARGE", f"request body is larger than {limit} bytes",
                              "PayloadTooLarge")
        else:
            raw = b""
        if not raw:
            raise InvalidInput("request body is empty; send a JSON object", where="body")
        try:
            data = json.loads(raw)
        except ValueError:
            raise InvalidInput("request body is not valid JSON", where="body") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"request body must be a JSON object, not {type(data).__name__}", where="body")
        return data
