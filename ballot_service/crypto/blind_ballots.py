"""A terminal ballot of the blind-signature flow: its wire fields, and the check of its
RSA-PSS signature against the round's announced key.

Wire form (the tablet sends it with its marks and retry id, POST /api/terminal/cast):

    round_ref  "r<round id>"                   the round the ballot is for
    serial     32 lowercase hex digits         16 random bytes chosen by the tablet
    prefix     base64url (no padding), 32 bytes  RFC 9474 msg_prefix
    signature  base64url (no padding), 256 bytes RSASSA-PSS (SHA-384, MGF1-SHA-384, salt 48)

The signed message is prefix || blind_rsa.ballot_message(round_ref, serial); the
signature is an ordinary RSA-PSS signature, so `openssl pkeyutl -verify` checks it with the
round's public key (README, ballot format).

A hybrid round's paper ballot (formats/ballots.py, BR1) is signed alike, so that once cast
nothing tells it from a tablet's; only its serial differs, and only to the holder of the
round's private key: 8 random bytes then the first 8 bytes of their HMAC-SHA256 under a key
derived from that private key (`paper_serial`). Intake reads it to keep the two channels
apart (a paper ballot is not cast from a tablet, a tablet's is not counted as paper); the
close deletes the private key, and with it any way to tell them apart.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ballot_service.crypto import blind_rsa
from ballot_service.formats.encoding import EncodingError, b64url_decode
from ballot_service.numbers import MAX_ROW_ID

FIELDS = ("round_ref", "serial", "prefix", "signature")
_ROUND_REF = re.compile(r"r([1-9][0-9]{0,17})")
_SERIAL = re.compile(r"[0-9a-f]{32}")


class BlindBallot(NamedTuple):
    round_ref: str
    serial: str        # hex
    prefix: str        # base64url text as sent
    signature: str     # base64url text as sent

    def as_object(self) -> dict:
        return {"prefix": self.prefix, "round_ref": self.round_ref, "serial": self.serial,
                "signature": self.signature}

    def signed_message(self) -> bytes:
        return b64url_decode(self.prefix) + blind_rsa.ballot_message(self.round_ref, bytes.fromhex(self.serial))


def round_id_of(round_ref: str) -> int:
    m = _ROUND_REF.fullmatch(round_ref) if isinstance(round_ref, str) else None
    if m is None:
        raise ValueError("round_ref is not r<round id>")
    round_id = int(m.group(1))
    if not 1 <= round_id <= MAX_ROW_ID:
        raise ValueError("round_ref names no round")  # (PostgreSQL would fail on a larger id)
    return round_id


def parse(data: dict) -> BlindBallot:
    """The four ballot fields of a submission; ValueError naming the first bad one."""
    values = {}
    for name in FIELDS:
        v = data.get(name)
        if not isinstance(v, str):
            raise ValueError(f"{name} is missing or not text")
        values[name] = v
    round_id_of(values["round_ref"])
    if not _SERIAL.fullmatch(values["serial"]):
        raise ValueError("serial must be 32 lowercase hex digits")
    try:
        prefix, sig = b64url_decode(values["prefix"]), b64url_decode(values["signature"])
    except EncodingError:
        raise ValueError("prefix and signature must be base64url") from None
    if len(prefix) != blind_rsa.PREFIX_LEN:
        raise ValueError(f"prefix must be {blind_rsa.PREFIX_LEN} bytes")
    if len(sig) != blind_rsa.KEY_BITS // 8:
        raise ValueError(f"signature must be {blind_rsa.KEY_BITS // 8} bytes")
    return BlindBallot(values["round_ref"], values["serial"], values["prefix"], values["signature"])


def load_round_key(der: bytes) -> rsa.RSAPublicKey:
    key = serialization.load_der_public_key(bytes(der))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("a round key is an RSA public key")
    return key


def verify(public_key: rsa.RSAPublicKey, ballot: BlindBallot) -> None:
    """Raises blind_rsa.InvalidSignature unless the round's key signed this ballot."""
    blind_rsa.verify(public_key, ballot.signed_message(), b64url_decode(ballot.signature))


_PAPER_SERIAL_PURPOSE = b"ballot-service hybrid paper serial/v1|"


def paper_serial_key(private_der: bytes, round_ref: str) -> bytes:
    """The key that marks a round's paper serials, derived from the round's private key."""
    return hmac.digest(hashlib.sha256(_PAPER_SERIAL_PURPOSE + bytes(private_der)).digest(),
                       round_ref.encode("ascii"), "sha256")


def _mark(key: bytes, head: bytes) -> bytes:
    return hmac.digest(key, head, "sha256")[:len(head)]


def paper_serial(key: bytes) -> bytes:
    """A paper ballot's serial (16 bytes): random, then its mark under `key`."""
    head = secrets.token_bytes(blind_rsa.SERIAL_LEN // 2)
    return head + _mark(key, head)


def is_paper_serial(key: bytes, serial_hex: str) -> bool:
    """Whether a serial (32 hex digits) carries the paper mark of `key` (a tablet's random
    serial does with probability 2**-64)."""
    serial = bytes.fromhex(serial_hex)
    half = len(serial) // 2
    return hmac.compare_digest(serial[half:], _mark(key, serial[:half]))
