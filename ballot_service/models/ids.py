"""Random primary keys: rows whose order must say nothing (casts, scanned pages)."""
from __future__ import annotations

import secrets


def random_id() -> str:
    return secrets.token_hex(16)
