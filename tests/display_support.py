"""Helpers of the presiding screen's tests (tests/test_display_*.py and
tests/browser/test_display_screen.py): the keys that would carry how members voted, reading
/display/<id>/state, the state embedded in the page, and an SSE reader for the event stream."""
from __future__ import annotations

import json
import re

# Keys that would carry how members voted. None of them may appear while a vote is open.
CHOICE_KEYS = {"for", "against", "abstain", "void", "marks", "candidates", "motion", "nominees", "projects",
               "passed", "result", "selected", "tied", "runoff_for"}


def get_state(screen, sid: int) -> dict:
    r = screen.get(f"/display/{sid}/state")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    return r.get_json()


def keys_in(obj) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | set().union(*(keys_in(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(keys_in(v) for v in obj)) if obj else set()
    return set()


def embedded_state(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="display-initial">(.*?)</script>', html, re.S)
    assert m, "the page embeds its state"
    return json.loads(m.group(1))


def strip_volatile(state: dict) -> dict:
    return {k: v for k, v in state.items() if k not in ("now", "seq")}


class Stream:
    """Read a streamed SSE response from the Flask test client, event by event."""

    def __init__(self, response):
        self.response, self.chunks, self.buf = response, iter(response.response), ""

    def next_block(self) -> str:
        while "\n\n" not in self.buf:
            chunk = next(self.chunks)
            self.buf += chunk.decode("utf-8") if isinstance(chunk, bytes) else chunk
        block, self.buf = self.buf.split("\n\n", 1)
        return block

    def next_event(self) -> tuple[str | None, dict | None, str]:
        block = self.next_block()
        name = data = None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        return name, data, block

    def close(self):
        self.response.close()
