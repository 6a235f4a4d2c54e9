"""The one rule for names people read: members, candidates, items, bodies, sittings, terminals.

A name is normalised to NFC (so 张三 typed two ways is one name) and trimmed, as the count
compares written-in names (rules.normalise_name), and refused when it is empty, too long, or
holds a character that is invisible or changes the text's direction:
controls (Cc), format characters (Cf: U+200B–U+200F, U+202A–U+202E, U+2066–U+2069, U+FEFF,
U+00AD …), line and paragraph separators (Zl, Zp), private-use (Co) and surrogate (Cs) code
points. With those two candidates could look identical on the ballot while being different
strings, or a signed record could read differently from what it says. The middle dot of
minority names (阿卜杜·艾力, U+00B7) is an ordinary punctuation mark and is allowed.

Lengths are counted here, before the database sees the text, so SQLite (which does not
enforce VARCHAR lengths) and PostgreSQL (which does) refuse the same names the same way.
"""
from __future__ import annotations

import unicodedata

from ballot_service.errors import InvalidInput
from ballot_service.rules import normalise_name

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs"})
# Named for the message; all of them are also in REFUSED_CATEGORIES.
_KNOWN = {
    "\u0000": "NUL", "\u00ad": "soft hyphen", "\u200b": "zero-width space", "\u200c": "zero-width non-joiner",
    "\u200d": "zero-width joiner", "\u200e": "left-to-right mark", "\u200f": "right-to-left mark",
    "\u202a": "bidi embedding", "\u202b": "bidi embedding", "\u202c": "bidi pop",
    "\u202d": "bidi override", "\u202e": "right-to-left override", "\u2066": "bidi isolate",
    "\u2067": "bidi isolate", "\u2068": "bidi isolate", "\u2069": "bidi isolate",
    "\u2028": "line separator", "\u2029": "paragraph separator", "\ufeff": "zero-width no-break space",
}

# Limits (characters), equal to the column lengths in models/
BODY_NAME = 200
SITTING_NAME = 200
ITEM_KEY = 64
ITEM_TITLE = 500
CANDIDATE_KEY = 64
CANDIDATE_TITLE = 500
CANDIDATE_DESCRIPTION = 5000
CANDIDATE_OFFICE = 200
MEMBER_NO = 64
MEMBER_NAME = 100
MEMBER_GROUP = 100
SEAT = 32
CARD_CODE = 64
TERMINAL_NAME = 100
USERNAME = 64


def bad_character(text: str, *, multiline: bool = False) -> str | None:
    """A description of the first refused character of `text` (e.g. 'U+202E right-to-left
    override at position 3'), or None when every character is allowed. With multiline=True
    line feeds and tabs are allowed (a description's paragraphs)."""
    for i, ch in enumerate(text):
        if multiline and ch in "\n\t":
            continue
        if unicodedata.category(ch) in REFUSED_CATEGORIES:
            label = _KNOWN.get(ch) or unicodedata.name(ch, "control character").lower()
            return f"U+{ord(ch):04X} ({label}) at position {i + 1}"
    return None


def check_name(value, *, what: str, where: str, max_len: int, required: bool = True,
               multiline: bool = False) -> str | None:
    """`value` as a clean name (NFC, trimmed), or InvalidInput saying what is wrong and where.
    None (or empty, when not required) gives None."""
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise InvalidInput(f"{what} is empty", where=where, zh=f"{what} 不能为空")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {_json_type(value)}", where=where,
                           zh=f"{what} 须为文本")
    text = normalise_name(value)
    if not text:
        raise InvalidInput(f"{what} is empty", where=where, zh=f"{what} 不能为空")
    bad = bad_character(text, multiline=multiline)
    if bad:
        raise InvalidInput(f"{what} holds an invisible, control or direction character: {bad}", where=where,
                           zh=f"{what} 含有不可见字符、控制字符或文字方向字符：{bad}")
    if len(text) > max_len:
        raise InvalidInput(f"{what} is {len(text)} characters long; at most {max_len} are allowed", where=where,
                           zh=f"{what} 长 {len(text)} 个字符，最多 {max_len} 个")
    return text


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__
