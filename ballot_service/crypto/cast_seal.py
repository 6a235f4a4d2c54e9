"""A secret round's accepted cast, sealed while the round is open (domain/cast_staging.py).

- `seal`: the cast's values (a JSON list), padded with spaces to `width` bytes (the caller
  picks one length for every cast of a round, so the ciphertext's length does not tell "for"
  from "against"), AES-256-GCM with a random nonce under a key derived by HKDF from the
  body's unlocked signing key (crypto/key_wrap.py); the associated data names the round and
  the row's tag, so a sealed row copied to another round or another row does not open.
- `tag`: HMAC-SHA256 of the serial under another derived key: equal serials give equal
  tags (intake refuses a repeat by it), and without the body's key a tag says nothing of
  the serial, even once the serials are published at the close.

Every app node derives the same keys from the shared keys folder, and so does a restarted
server; a copy of the database alone cannot open a sealed cast.
"""
from __future__ import annotations

import hmac
import json

from ballot_service.crypto import key_wrap

SEAL_PURPOSE = "cast-staging-seal/v1"
TAG_PURPOSE = "cast-staging-tag/v1"

UnsealError = key_wrap.UnwrapError


def tag(signing_key, serial: str) -> str:
    """64 hex digits: HMAC-SHA256(derived key, serial)."""
    return hmac.digest(signing_key.derive_key(TAG_PURPOSE), serial.encode("utf-8"), "sha256").hex()


def plaintext(values) -> bytes:
    """The JSON sealed (ASCII only, compact), or that of a part of it (the same encoding)."""
    return json.dumps(values, ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode("ascii")


def _context(round_id: int, row_tag: str) -> bytes:
    return f"staged cast|round:{round_id}|tag:{row_tag}".encode("ascii")


def seal(signing_key, round_id: int, row_tag: str, data: bytes, width: int) -> bytes:
    """`data` (plaintext()) padded to `width` bytes, or past it to the next multiple of 256
    when longer (a ballot with long write-in names), and sealed."""
    if len(data) > width:
        width += -(-(len(data) - width) // 256) * 256
    return key_wrap.wrap(signing_key, SEAL_PURPOSE, data.ljust(width, b" "), _context(round_id, row_tag))


def unseal(signing_key, round_id: int, row_tag: str, blob: bytes):
    """The values sealed; UnsealError if the blob does not open with this key for this row."""
    return json.loads(key_wrap.unwrap(signing_key, SEAL_PURPOSE, bytes(blob), _context(round_id, row_tag)))
