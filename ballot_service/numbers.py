"""Whole numbers as every layer checks them: a JSON integer (Python's bool is an int, but
`true` is not a count) and the checks the rules make of the counts they are given."""
from __future__ import annotations

# A row id: the INTEGER id columns hold no more, on SQLite and PostgreSQL alike (PostgreSQL
# refuses a larger value with an error instead of finding no row).
MAX_ROW_ID = 2 ** 31 - 1


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def require_whole(error: type[Exception], minimum: int = 0, **values) -> None:
    """Raise `error` naming the first value that is not a whole number >= `minimum`."""
    for name, v in values.items():
        if not is_int(v) or v < minimum:
            raise error(f"{name} must be a whole number >= {minimum}, not {v!r}")
