"""Sealing ballot tokens to a seat terminal, so the database never links a member to a serial.

The service stores each member's signed token only as a sealed box that the member's
terminal alone can open; the service keeps no key that opens it.

Terminal key: derived deterministically from the terminal's secret credential string,
  sk = HKDF-SHA256(ikm=credential UTF-8 bytes, salt=none, info=b"ballot-service seal v1", 32 bytes)
  used as an X25519 private key (RFC 7748 clamping applies); the service stores only the
  raw 32-byte public key (Terminal.seal_public_key) and a hash of the credential.

Sealed box (ECIES):
  eph = fresh X25519 key; shared = X25519(eph, recipient_pub)
  k = HKDF-SHA256(ikm=shared, salt=none, info=b"ballot-service seal v1 key" || eph_pub || recipient_pub, 32)
  blob = eph_pub (32) || nonce (12, random) || AES-256-GCM(k, nonce, plaintext, aad=eph_pub || recipient_pub)
"""
from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ballot_service.errors import BallotError

INFO = b"ballot-service seal v1"
KEY_INFO = b"ballot-service seal v1 key"
PUB_LEN, NONCE_LEN, TAG_LEN = 32, 12, 16


class SealError(BallotError):
    """A sealed box is malformed, altered, or sealed to another terminal."""

    status = 400
    error_type = "SealError"


def _hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def credential_keypair(credential: str) -> tuple[X25519PrivateKey, bytes]:
    if not isinstance(credential, str) or not credential:
        raise ValueError("a terminal credential is a non-empty string")
    sk = X25519PrivateKey.from_private_bytes(_hkdf(credential.encode("utf-8"), INFO))
    return sk, sk.public_key().public_bytes_raw()


def _aead_key(shared: bytes, eph_pub: bytes, recipient_pub: bytes) -> bytes:
    return _hkdf(shared, KEY_INFO + eph_pub + recipient_pub)


def seal(public_key_raw: bytes, plaintext: bytes) -> bytes:
    if not isinstance(public_key_raw, (bytes, bytearray)) or len(public_key_raw) != PUB_LEN:
        raise ValueError("a terminal's sealing public key is 32 raw bytes")
    recipient_pub = bytes(public_key_raw)
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes_raw()
    shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient_pub))
    nonce = os.urandom(NONCE_LEN)
    ct = AESGCM(_aead_key(shared, eph_pub, recipient_pub)).encrypt(nonce, bytes(plaintext), eph_pub + recipient_pub)
    return eph_pub + nonce + ct


def open_sealed(private_key: X25519PrivateKey, blob: bytes) -> bytes:
    """Open a sealed box; raises SealError if it was altered or sealed to another key."""
    if not isinstance(blob, (bytes, bytearray)) or len(blob) < PUB_LEN + NONCE_LEN + TAG_LEN:
        raise SealError("sealed token is too short")
    blob = bytes(blob)
    eph_pub, nonce, ct = blob[:PUB_LEN], blob[PUB_LEN:PUB_LEN + NONCE_LEN], blob[PUB_LEN + NONCE_LEN:]
    recipient_pub = private_key.public_key().public_bytes_raw()
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        return AESGCM(_aead_key(shared, eph_pub, recipient_pub)).decrypt(nonce, ct, eph_pub + recipient_pub)
    except (InvalidTag, ValueError):
        raise SealError("sealed token does not open: altered, or sealed to another terminal") from None
