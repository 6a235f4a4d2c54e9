"""Signed ballot tokens: the format, how they are made and verified (paper ballots in the
hall are domain/paper_ballots.py).

Encoding (stable; an outside tool can verify a ballot with nothing but this text)
-------------------------------------------------------------------------------
Payload, a JSON object with exactly these fields::

    {"v": 1, "body": <int>, "session": <int>, "item": <int>, "round": <int>, "serial": <str>}

- `v` format version, always 1; `body`, `session`, `item` are database ids; `round` is the
  round number (1, or 2, 3, … for a runoff). All positive integers (JSON numbers, no
  fraction, no exponent).
- `serial`: 32 lowercase hex digits, 128 random bits from `secrets.token_hex(16)`. Random,
  so a serial never reveals hand-out or issue order.

Signed bytes: the canonical JSON of the payload (`canonical.canonical_json`): UTF-8,
keys sorted, separators "," and ":" with no spaces, i.e. in Python
`json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()`,
for example `{"body":1,"item":3,"round":1,"serial":"…","session":2,"v":1}`.

Signature: Ed25519 (RFC 8032, pure, no pre-hash) over those bytes with the body's key
`keys/body-<body>.key.pem`; the public key is `keys/body-<body>.pub.pem`.

Token (JSON form, as the API passes it): `{"payload": {...}, "sig": "<base64url>"}`.

QR text form::

    BS1.<base64url(canonical payload bytes)>.<base64url(64-byte signature)>

base64url is RFC 4648 §5 (alphabet `A-Z a-z 0-9 - _`) without `=` padding. Decoding is
strict: the text must be exactly the unpadded encoding of the decoded bytes, and the
payload bytes must be exactly the canonical JSON of the object they hold; anything else is
refused as "malformed". To verify by hand::

    python3 -c 'import sys,base64;p=sys.argv[1].split(".");d=lambda s:base64.urlsafe_b64decode(s+"="*(-len(s)%4));open("m","wb").write(d(p[1]));open("s","wb").write(d(p[2]))' "$QR"
    openssl pkeyutl -verify -pubin -inkey keys/body-1.pub.pem -rawin -in m -sigfile s

Hybrid votes: a paper ballot signed with the round's key
-------------------------------------------------------
In a `hybrid` round a paper ballot is signed like a tablet's ballot, with the round's RSA key
(crypto/blind_ballots.py: RSA-PSS over msg_prefix || ballot_message(round_ref, serial), a
random 32-byte msg_prefix of its own), so that once counted it cannot be told from the
tablets' ballots. QR text form::

    BR1.<body>.<session>.<item>.<round>.<round id>.<serial>.<base64url prefix>.<base64url signature>

The numbers are decimal without leading zeros; only round id and serial are signed (the
message names `r<round id>`), and intake takes the round from the round id and refuses a
ballot whose other numbers are not that round's. `text_to_token` gives it as
`{"payload": {...the six fields...}, "sig": …, "prefix": …, "round_ref": "r<id>"}`.

Refusals
--------
`BallotRefused.reason` and the HTTP status it maps to:

| reason      | status | meaning |
|-------------|--------|---------|
| malformed   | 400    | not a token: bad structure, types, base64 or JSON |
| forged      | 403    | the signature does not verify under this body's key |
| wrong_item  | 403    | genuine, but for another body, session or item |
| wrong_round | 403    | genuine, for this item, but another round |
| unknown     | 403    | serial not issued (printed) for this round |
| spare       | 403    | a printed ballot that the desk never handed out |
| reused      | 409    | serial already counted |
| late        | 409    | submitted after the vote closed |

Paper ballots: `create_paper_ballots` records each printed serial (PaperBallot rows);
the distribution desk marks a ballot handed out by scanning it (`hand_out`), recording
no identity; the counting station refuses printed-but-not-handed-out ballots as spare
(`check_paper_serial`). Domain functions only flush; the caller commits.
"""
from __future__ import annotations

import json
import re
import secrets

from ballot_service.crypto.keys import SignatureInvalid, SigningKey, verify_signature
from ballot_service.errors import Conflict
from ballot_service.formats import encoding
from ballot_service.formats.canonical import canonical_json
from ballot_service.models import Item, Round
from ballot_service.numbers import is_int

TEXT_PREFIX = "BS1"
ROUND_KEY_PREFIX = "BR1"  # a hybrid round's paper ballot, signed with the round's RSA key
_NUMBER = re.compile(r"[1-9][0-9]{0,15}")
PREFIX_BYTES, RSA_SIG_BYTES = 32, 256
FORMAT_VERSION = 1
PAYLOAD_FIELDS = frozenset({"v", "body", "session", "item", "round", "serial"})
SERIAL_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_PAPER_BATCH = 20_000  # ballots signed and printed in one run

REFUSAL_STATUS = {
    "malformed": 400,
    "forged": 403,
    "wrong_item": 403,
    "wrong_round": 403,
    "unknown": 403,
    "spare": 403,
    "reused": 409,
    "late": 409,
}

_DEFAULT_MESSAGES = {
    "malformed": "not a valid ballot (malformed)",
    "forged": "the ballot's signature does not verify (forged or altered)",
    "wrong_item": "the ballot is for another item",
    "wrong_round": "the ballot is for another round",
    "unknown": "no ballot with this serial was issued for this round",
    "spare": "this printed ballot was never handed out (spare)",
    "reused": "this ballot has already been counted",
    "late": "the vote is closed",
}


# What a teller at the station or a deputy at a tablet reads (the English detail stays in `message`).
_ZH_MESSAGES = {
    "malformed": "不是有效的选票（格式不正确）",
    "forged": "选票签名核验不通过（伪造或被改动），已拒收",
    "wrong_item": "这张选票属于另一表决事项，已拒收",
    "wrong_round": "这张选票属于另一轮表决，已拒收",
    "unknown": "本轮没有发出这一序号的选票，已拒收",
    "spare": "这张印制的选票没有发出（备用票），已拒收",
    "reused": "这张选票已经计入，不再重复计入",
    "late": "表决已结束，不再接收选票",
}


class BallotRefused(Conflict):
    """A ballot refused at intake or at the desk. `reason` is one of REFUSAL_STATUS's keys;
    `status` follows the table in the module docstring (409 for reused/late, 403 for a
    genuine-looking ballot that is not acceptable here, 400 for malformed input)."""

    error_type = "BallotRefused"

    def __init__(self, reason: str, message: str | None = None, where: str | None = "ballot"):
        if reason not in REFUSAL_STATUS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        super().__init__(message or _DEFAULT_MESSAGES[reason], where=where, zh=_ZH_MESSAGES[reason])
        self.reason = reason
        self.status = REFUSAL_STATUS[reason]

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["reason"] = self.reason
        return d


def b64url_decode(text: str) -> bytes:
    try:
        return encoding.b64url_decode(text)
    except encoding.EncodingError as exc:
        raise BallotRefused("malformed", str(exc)) from None


def _check_payload(payload) -> dict:
    if not isinstance(payload, dict) or set(payload) != PAYLOAD_FIELDS:
        raise BallotRefused("malformed", "ballot payload must have exactly the fields "
                                         + ", ".join(sorted(PAYLOAD_FIELDS)))
    if not is_int(payload["v"]) or payload["v"] != FORMAT_VERSION:
        raise BallotRefused("malformed", f"unsupported ballot format version {payload['v']!r}")
    for f in ("body", "session", "item", "round"):
        v = payload[f]
        if not is_int(v) or v < 1 or v > 2**53:
            raise BallotRefused("malformed", f"ballot field {f!r} must be a positive whole number")
    if not isinstance(payload["serial"], str) or not SERIAL_RE.match(payload["serial"]):
        raise BallotRefused("malformed", "ballot serial must be 32 lowercase hex digits")
    return payload


def new_serial() -> str:
    return secrets.token_hex(16)


def make_token(key: SigningKey, body: int, session: int, item: int, round_no: int,
               serial: str | None = None) -> dict:
    payload = {"v": FORMAT_VERSION, "body": body, "session": session, "item": item,
               "round": round_no, "serial": serial if serial is not None else new_serial()}
    _check_payload(payload)
    sig = key.sign(canonical_json(payload))
    return {"payload": payload, "sig": encoding.b64url_encode(sig)}


def is_round_key_token(token: dict) -> bool:
    """Whether a token is a hybrid round's paper ballot (BR1, the round's RSA key)."""
    return isinstance(token, dict) and "prefix" in token


def round_key_text(payload: dict, round_ref: str, prefix: str, sig: str) -> str:
    """The QR text of a hybrid round's paper ballot (module docstring)."""
    p = _check_payload(payload)
    return ".".join((ROUND_KEY_PREFIX, *(str(p[f]) for f in ("body", "session", "item", "round")),
                     round_ref[1:], p["serial"], prefix, sig))


def _round_key_token(parts: list[str]) -> dict:
    if len(parts) != 9 or not all(_NUMBER.fullmatch(x) for x in parts[1:6]):
        raise BallotRefused("malformed", f"ballot text must look like {ROUND_KEY_PREFIX}.<body>.<session>.<item>."
                                         f"<round>.<round id>.<serial>.<prefix>.<signature>")
    body, session, item, round_no, round_id = (int(x) for x in parts[1:6])
    if len(b64url_decode(parts[7])) != PREFIX_BYTES or len(b64url_decode(parts[8])) != RSA_SIG_BYTES:
        raise BallotRefused("malformed", f"ballot prefix must be {PREFIX_BYTES} bytes and its signature "
                                         f"{RSA_SIG_BYTES}")
    payload = _check_payload({"v": FORMAT_VERSION, "body": body, "session": session, "item": item,
                              "round": round_no, "serial": parts[6]})
    return {"payload": payload, "sig": parts[8], "prefix": parts[7], "round_ref": f"r{round_id}"}


def token_to_text(token: dict) -> str:
    payload = _check_payload(token.get("payload") if isinstance(token, dict) else None)
    sig = token.get("sig")
    if not isinstance(sig, str):
        raise BallotRefused("malformed", "ballot signature missing")
    if is_round_key_token(token):
        return round_key_text(payload, token["round_ref"], token["prefix"], sig)
    return f"{TEXT_PREFIX}.{encoding.b64url_encode(canonical_json(payload))}.{sig}"


def text_to_token(text) -> dict:
    """Parse the QR text form. Raises BallotRefused('malformed') on anything but a well-formed,
    canonically encoded token. Does not check the signature (see verify_token)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise BallotRefused("malformed", "ballot text is not ASCII") from None
    if not isinstance(text, str) or len(text) > 2000:
        raise BallotRefused("malformed", "ballot text missing or too long")
    parts = text.strip().split(".")
    if parts[0] == ROUND_KEY_PREFIX:
        return _round_key_token(parts)
    if len(parts) != 3 or parts[0] != TEXT_PREFIX:
        raise BallotRefused("malformed", f"ballot text must look like {TEXT_PREFIX}.<payload>.<signature>")
    raw = b64url_decode(parts[1])
    sig = b64url_decode(parts[2])
    if len(sig) != 64:
        raise BallotRefused("malformed", "ballot signature must be 64 bytes")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BallotRefused("malformed", "ballot payload is not JSON") from None
    _check_payload(payload)
    if canonical_json(payload) != raw:
        raise BallotRefused("malformed", "ballot payload is not in canonical form")
    return {"payload": payload, "sig": parts[2]}


def verify_token(public_key, token: dict, *, body: int, session: int, item: int, round_no: int) -> dict:
    """Check structure, signature, then body/session/item and round. Returns the payload;
    raises BallotRefused on any problem, never returns False."""
    if is_round_key_token(token):
        raise BallotRefused("malformed", "a hybrid vote's paper ballot (signed with the round's key) is printed "
                                         "for its member when allowed, never handed out at a desk; intake checks it")
    if not isinstance(token, dict) or set(token) != {"payload", "sig"}:
        raise BallotRefused("malformed", "a ballot token has exactly 'payload' and 'sig'")
    payload = _check_payload(token["payload"])
    sig = b64url_decode(token["sig"]) if isinstance(token["sig"], str) else None
    if sig is None or len(sig) != 64:
        raise BallotRefused("malformed", "ballot signature must be 64 bytes in base64url")
    try:
        verify_signature(public_key, sig, canonical_json(payload))
    except SignatureInvalid:
        raise BallotRefused("forged") from None
    if (payload["body"], payload["session"], payload["item"]) != (body, session, item):
        raise BallotRefused("wrong_item", f"the ballot is for item {payload['item']} "
                                          f"(session {payload['session']}), not item {item}")
    if payload["round"] != round_no:
        raise BallotRefused("wrong_round", f"the ballot is for round {payload['round']}, "
                                           f"not round {round_no}")
    return payload


def serial_short(serial: str) -> str:
    """The short human-readable serial printed under the QR code: first 8 hex, grouped."""
    return f"{serial[:4]} {serial[4:8]}"


# --- paper ballots -----------------------------------------------------------------------

def token_context(item: Item, round_: Round) -> dict:
    """The keyword arguments verify_token needs for this item and round."""
    return {"body": item.sitting.body_id, "session": item.sitting_id, "item": item.id,
            "round_no": round_.number}
