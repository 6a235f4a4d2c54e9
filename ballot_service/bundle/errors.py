"""BundleInvalid, the one error a bundle check raises, and `fail`, which raises it."""
from __future__ import annotations

from typing import NoReturn

from ballot_service.errors import BallotError


class BundleInvalid(BallotError):
    """The bundle fails a check; the message names the check and the place, in plain words."""

    status = 422
    error_type = "BundleInvalid"


def fail(message: str, where: str | None = None) -> NoReturn:
    raise BundleInvalid(message, where=where)
