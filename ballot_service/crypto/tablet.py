"""The tablet's half of blind issuance, in Python (rehearsal, benchmarks, tests): what
static/seat.js does with static/blind_rsa.js in the browser.

1. `round_key_from_announcement`: accept the round's key only if it is the announced one:
   the announcement names the round_ref the state endpoint gave, and the SHA-384 of its
   SubjectPublicKeyInfo DER equals both the announcement's fingerprint and the fingerprint
   the state endpoint gave (and, when the body's public key is at hand, the body's Ed25519
   signature over the announcement verifies).
2. `start`: a random 16-byte serial, msg = ballot_message(round_ref, serial), prepared and
   blinded; only `blinded` is sent (POST /api/terminal/blind-sign).
3. `finish`: unblind the answer into the ballot {round_ref, serial, prefix, signature}.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ballot_service.crypto import blind_ballots, blind_rsa
from ballot_service.formats.canonical import canonical_json
from ballot_service.formats.encoding import b64url_decode, b64url_encode


class UnannouncedKey(ValueError):
    """The round key offered is not the one announced for this round."""


def round_key_from_announcement(announcement: dict, round_ref: str, fingerprint: str,
                                body_key: Ed25519PublicKey | None = None) -> rsa.RSAPublicKey:
    if not isinstance(announcement, dict) or not isinstance(announcement.get("data", announcement), dict):
        raise UnannouncedKey("no round key was announced for this round")
    data = announcement.get("data", announcement)
    der = b64url_decode(data["public_key_der"])
    actual = hashlib.sha384(der).hexdigest()
    if data.get("round_ref") != round_ref or data.get("fingerprint") != actual or actual != fingerprint:
        raise UnannouncedKey("the round key is not the one announced for this round")
    if body_key is not None:
        payload = {k: v for k, v in data.items() if k != "signature"}
        body_key.verify(b64url_decode(data["signature"]), canonical_json(payload))
    return blind_ballots.load_round_key(der)


@dataclass
class Pending:
    round_ref: str
    serial: bytes
    prepared: bytes
    inv: bytes
    blinded: bytes

    @property
    def blinded_text(self) -> str:
        return b64url_encode(self.blinded)


def start(pub: rsa.RSAPublicKey, round_ref: str) -> Pending:
    serial = os.urandom(blind_rsa.SERIAL_LEN)
    prepared = blind_rsa.prepare(blind_rsa.ballot_message(round_ref, serial))
    blinded, inv = blind_rsa.blind(pub, prepared)
    return Pending(round_ref, serial, prepared, inv, blinded)


def finish(pub: rsa.RSAPublicKey, pending: Pending, blind_sig_text: str) -> dict:
    sig = blind_rsa.finalize(pub, pending.prepared, b64url_decode(blind_sig_text), pending.inv)
    return {"round_ref": pending.round_ref, "serial": pending.serial.hex(),
            "prefix": b64url_encode(pending.prepared[:blind_rsa.PREFIX_LEN]), "signature": b64url_encode(sig)}


def take_ballot(call, credential: str) -> dict:
    """Steps 1-3 over the terminal API (the announced key from the state's vote, as the seat page
    takes it). `call(method, path, body=None, credential=...)` returns
    (status, JSON) and raises on a refusal (rehearsal's and the tests' HTTP helpers do)."""
    _, state = call("GET", "/api/terminal/state", credential=credential)
    vote = state["vote"]
    announcement = vote["round_key"]
    pub = round_key_from_announcement(announcement, vote["round_ref"], vote["key_fingerprint"])
    pending = start(pub, vote["round_ref"])
    _, signed = call("POST", "/api/terminal/blind-sign",
                     {"round_ref": vote["round_ref"], "blinded_msg": pending.blinded_text}, credential=credential)
    return finish(pub, pending, signed["blind_sig"])


def take_set_ballots(call, credential: str) -> list[dict]:
    """A ballot set's ballots as the tablet takes them: each open round's announced key
    (each in its vote of the state, checked against it), a fresh serial
    blinded for each, and all the blind signatures in one request (POST
    /api/terminal/blind-sign-set). One ballot per election of vote.ballot_set, in its order."""
    _, state = call("GET", "/api/terminal/state", credential=credential)
    votes = state["vote"].get("ballot_set") or [state["vote"]]
    keys, pendings = [], []
    for vote in votes:
        keys.append(round_key_from_announcement(vote["round_key"], vote["round_ref"], vote["key_fingerprint"]))
        pendings.append(start(keys[-1], vote["round_ref"]))
    _, signed = call("POST", "/api/terminal/blind-sign-set",
                     {"ballots": [{"round_ref": p.round_ref, "blinded_msg": p.blinded_text} for p in pendings]},
                     credential=credential)
    return [finish(k, p, sig) for k, p, sig in zip(keys, pendings, signed["blind_sigs"])]


def new_retry_id() -> str:
    return secrets.token_urlsafe(16)


RECEIPT_DOMAIN = b"ballot-service/receipt/v1\n"


def receipt_hash_of(secret_hex: str) -> str:
    """H(r): the first 64 hex digits of SHA-384("ballot-service/receipt/v1\n" || hex r)."""
    return hashlib.sha384(RECEIPT_DOMAIN + secret_hex.encode("ascii")).hexdigest()[:64]


def new_receipt() -> tuple[str, str]:
    """A receipt secret r (16 random bytes, hex) and H(r), sent with the cast as receipt_hash.
    The receipt code the service answers is H(r)'s first 16 hex digits: the tablet can check
    it, and r proves the receipt is this tablet's without saying anything about the marks."""
    r = secrets.token_hex(16)
    return r, receipt_hash_of(r)
