"""Canonical JSON: the one byte encoding that every signature and hash in the service covers.

UTF-8, keys sorted, no insignificant white space, non-ASCII kept as is, integers only
(no floats are ever signed). An outside tool reproduces it with
`json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()`.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    _refuse_floats(obj)
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_LEAVES = (str, int, bool, type(None))


def _refuse_floats(obj: Any) -> None:
    kind = type(obj)
    if kind in _LEAVES:  # most of what is signed: checked first (a cast's marks are all text)
        return
    if isinstance(obj, float):
        raise TypeError("floats are never signed; use integers")
    if isinstance(obj, dict):
        for v in obj.values():
            _refuse_floats(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _refuse_floats(v)
