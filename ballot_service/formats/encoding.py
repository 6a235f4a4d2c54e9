"""Small wire encodings every format shares: unpadded base64url (whole numbers: numbers.py)."""
from __future__ import annotations

import base64
import binascii
import re

_B64URL_RE = re.compile(r"^[A-Za-z0-9_-]+$")  # never empty: nothing we encode is


class EncodingError(ValueError):
    """Text that is not the canonical encoding it claims to be."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url: refuses padding, other alphabets and non-canonical text
    (unused trailing bits set), so one value has exactly one text."""
    if not isinstance(text, str) or not _B64URL_RE.match(text) or len(text) % 4 == 1:
        raise EncodingError("bad base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise EncodingError("bad base64url") from None
    if b64url_encode(data) != text:
        raise EncodingError("non-canonical base64url")
    return data

