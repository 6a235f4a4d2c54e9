"""A secret kept in the database only wrapped: AES-256-GCM under a key that only the holder
of a body's unlocked signing key can derive (HKDF-SHA256 from the Ed25519 private key, with a
label naming the purpose). Every app node loads that signing key from the shared keys folder,
so each derives the same wrapping key, and so does a restarted server; a copy of the database
alone (without the keys folder and its passphrase) cannot unwrap anything.

Used for a round's private blind-signing key (domain/issuance.py): with it, a database copy
taken during the vote would let its holder mint ballots for the open round.

Stored form: b"bw1" ‖ 12-byte random nonce ‖ ciphertext and tag; the associated data names
what is wrapped (e.g. the round), so a wrapped key moved to another round's row fails.
"""
from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = b"bw1"
NONCE_LEN = 12


class UnwrapError(ValueError):
    """The blob is not one this body's key wrapped for this purpose (another key, a changed
    body key, a blob of another round, or damaged bytes)."""


def wrap(signing_key, purpose: str, plaintext: bytes, context: bytes) -> bytes:
    """`signing_key`: keys.SigningKey; `purpose`: the label the wrapping key is derived with."""
    nonce = os.urandom(NONCE_LEN)
    return FORMAT + nonce + AESGCM(signing_key.derive_key(purpose)).encrypt(nonce, plaintext, FORMAT + context)


def unwrap(signing_key, purpose: str, blob: bytes, context: bytes) -> bytes:
    if not isinstance(blob, bytes) or not blob.startswith(FORMAT) or len(blob) < len(FORMAT) + NONCE_LEN + 16:
        raise UnwrapError("not a wrapped key")
    nonce = blob[len(FORMAT):len(FORMAT) + NONCE_LEN]
    try:
        return AESGCM(signing_key.derive_key(purpose)).decrypt(nonce, blob[len(FORMAT) + NONCE_LEN:],
                                                                FORMAT + context)
    except InvalidTag:
        raise UnwrapError("the wrapped key does not open with this body's signing key") from None
