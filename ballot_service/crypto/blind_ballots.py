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
"""
from __future__ import annotations

import re
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
