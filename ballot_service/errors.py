"""Typed errors raised by domain code; the web layer maps each to one JSON shape:
{"errors": [{"message": ..., "errorType": ..., "where": ...}]}."""
from __future__ import annotations


class BallotError(Exception):
    """Base for errors a user can act on. `where` names the field, row or path at fault."""

    status = 400
    error_type = "BadRequest"

    def __init__(self, message: str, where: str | None = None, *, zh: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.zh = zh  # the Chinese wording shown on the screens, when there is one

    def text(self, lang: str) -> str:
        """The message in the screen's language (English when no Chinese wording is given)."""
        return self.zh if lang == "zh" and self.zh else self.message

    def to_dict(self) -> dict:
        d = {"message": self.message, "errorType": self.error_type}
        if self.zh:
            d["message_zh"] = self.zh
        if self.where:
            d["where"] = self.where
        return d


class InvalidInput(BallotError):
    status = 400
    error_type = "InvalidInput"


class NotFound(BallotError):
    status = 404
    error_type = "NotFound"


class Conflict(BallotError):
    """The request is well formed but the state does not allow it (e.g. a used serial)."""

    status = 409
    error_type = "Conflict"


class Unauthorized(BallotError):
    status = 401
    error_type = "Unauthorized"


class Forbidden(BallotError):
    status = 403
    error_type = "Forbidden"


class QuorumNotMet(Conflict):
    error_type = "QuorumNotMet"


class KeyFileError(BallotError):
    """A signing key is missing, corrupted, or the passphrase is wrong; says how to fix it."""

    status = 500
    error_type = "KeyFileError"


class TooManyRequests(BallotError):
    """A rate limit refuses the request for now; the message says how long to wait."""

    status = 429
    error_type = "TooManyRequests"
