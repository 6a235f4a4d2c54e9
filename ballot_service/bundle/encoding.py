"""The byte forms of the bundle's files: pretty JSON (`.json`), canonical JSON lines
(`.jsonl`) and file digests (base64url and JSON integers: formats/encoding.py). Export writes with these and
verify compares against them, so a file passes only in exactly the form the service writes."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ballot_service.formats.canonical import canonical_json


def pretty_json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=1) + "\n"


def json_line(obj) -> str:
    return canonical_json(obj).decode("utf-8") + "\n"


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
