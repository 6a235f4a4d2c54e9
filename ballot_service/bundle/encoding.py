"""The byte forms of the bundle's files: pretty JSON (`.json`), canonical JSON lines
(`.jsonl`), unpadded base64url signatures and file digests. Export writes with these and
verify compares against them, so a file passes only in exactly the form the service writes."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

from ballot_service.formats.ballots import b64url_encode
from ballot_service.formats.canonical import canonical_json


def pretty_json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=1) + "\n"


def json_line(obj) -> str:
    return canonical_json(obj).decode("utf-8") + "\n"


def unb64url(text: str) -> bytes:
    """Strict unpadded base64url; ValueError (binascii.Error is one) for any other text."""
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(data) != text:
        raise ValueError("not canonical base64url")
    return data


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# canonical_json without its float scan: safe only on values parsed with DECODE, which
# refuses floats, and then byte for byte what canonical_json gives.
ENCODE = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode
QUOTE = json.encoder.encode_basestring  # the encoder's own string quoting (ensure_ascii=False)


def _no_float(text):
    raise ValueError(f"number {text} is not a whole number")


DECODE = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float).decode


def is_int(v) -> bool:
    """A JSON integer: int, but not bool."""
    return isinstance(v, int) and not isinstance(v, bool)
