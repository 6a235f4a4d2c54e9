"""Typed errors raised by domain code; the web layer maps each to one JSON shape:
{"errors": [{"message": ..., "errorType": ..., "where": ...}]}."""
from __future__ import annotations


class BallotError(Exception):
    """Base for errors a user can act on. `where` names the field, row or path at fault."""

    status = 400
    error_type = "BadRequest"

    def __init_subclass__(cls, status: int | None = None, **kw):
        super().__init_subclass__(**kw)
        # `class X(BallotError, status=N)`: a new kind of error, its errorType the class name
        # (renaming such a class renames it in the JSON); a subclass without one inherits both.
        if status is not None:
            cls.status, cls.error_type = status, cls.__name__

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


class InvalidInput(BallotError, status=400):
    pass


class NotFound(BallotError, status=404):
    pass


class Conflict(BallotError, status=409):
    """The request is well formed but the state does not allow it (e.g. a used serial)."""


class Unauthorized(BallotError, status=401):
    pass


class Forbidden(BallotError, status=403):
    pass


class QuorumNotMet(Conflict):
    error_type = "QuorumNotMet"


class KeyFileError(BallotError, status=500):
    """A signing key is missing, corrupted, or the passphrase is wrong; says how to fix it."""


class TooManyRequests(BallotError, status=429):
    """A rate limit refuses the request for now; the message says how long to wait."""
