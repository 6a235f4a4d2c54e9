"""Breaking Chinese text into lines for print: a number stays with its unit (33张, 98.15%) and
no line starts with closing punctuation (避头点). Width is measured by the caller (a PDF's
string width), so the same rule serves any font and size."""
from __future__ import annotations

import re

# A number with its unit stays whole; closing punctuation sticks to what precedes it.
_TOKEN = re.compile(r"[0-9][0-9.,]*(?:%|[张票名人项个次轮位])?|.", re.S)
_CLOSING = set("，。、；：！？）》」』”’%")


def unbroken_lines(text: str, width: float, measure) -> list[str]:
    """Greedy line filling of Chinese text over unbreakable tokens (see _TOKEN)."""
    tokens: list[str] = []
    for tok in _TOKEN.findall(text):
        if tokens and tok in _CLOSING:
            tokens[-1] += tok
        else:
            tokens.append(tok)
    lines, line = [], ""
    for tok in tokens:
        if line and measure(line + tok) > width:
            lines.append(line)
            line = "" if tok.isspace() else tok  # a new line starts with text, not a space
        else:
            line += tok
    if line:
        lines.append(line)
    return lines
