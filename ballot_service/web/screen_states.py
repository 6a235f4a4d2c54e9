"""Per server process: each sitting's presiding-screen state at the head watcher's seq, built
once for all of its open screens (twenty screens used to build it twenty times at every
change, casts included), and built ahead on a builder thread as soon as the heads move
(web/head_watcher.py), so a woken event stream most often finds it ready instead of waiting
two more turns of a busy event loop for a thread to build it (under a hall's load a turn took
~0.1 s, benchmarks/RESULTS.md, 待公布).

Keyed by the sitting and the screens' /verify address (the host they asked on): the state is
the same JSON for every screen otherwise (labels live in the page). A key nobody has open any
more is forgotten."""
from __future__ import annotations

import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from flask import Flask

from ballot_service.web import display
from ballot_service.web.display.state import AuditCursor

log = logging.getLogger(__name__)


class ScreenStates:
    """The built states, and the keys some event stream of this process has open."""

    def __init__(self, flask_app: Flask) -> None:
        self.flask_app = flask_app
        self._build_lock = threading.Lock()  # held while building (a database read)
        self._built: dict[tuple, tuple[int | None, dict]] = {}
        self._cursors: dict[tuple, AuditCursor] = {}
        # Which keys are open: changed on the event loop, never held while building.
        self._keys_lock = threading.Lock()
        self._open: Counter = Counter()
        self._makers: dict[tuple, object] = {}  # key -> its verify_url maker
        self._builder = ThreadPoolExecutor(1, thread_name_prefix="screen-states")
        self._wanted: int | None = None  # the newest seq asked of the builder

    @staticmethod
    def key(sitting_id: int, verify_url) -> tuple:
        return (sitting_id, verify_url("RECORD"))

    def opened(self, sitting_id: int, verify_url) -> tuple:
        """A stream of this sitting opened (on the loop): built ahead from now on."""
        key = self.key(sitting_id, verify_url)
        with self._keys_lock:
            self._open[key] += 1
            self._makers[key] = verify_url
        return key

    def closed(self, key: tuple) -> None:
        """A stream closed (on the loop); the last one of its key takes the key's state along."""
        with self._keys_lock:
            self._open[key] -= 1
            if self._open[key] > 0:
                return
            del self._open[key], self._makers[key]
            self._built.pop(key, None)
            self._cursors.pop(key, None)

    def ready(self, key: tuple, seq: int | None) -> dict | None:
        """The state built at `seq`, if it is (on the loop: a dict read, no lock, no wait)."""
        built = self._built.get(key)
        return built[1] if built is not None and seq is not None and built[0] == seq else None

    def get(self, sitting_id: int, verify_url, seq: int | None) -> dict:
        """The state at `seq`, built now unless it was (on a thread: it reads the database)."""
        key = self.key(sitting_id, verify_url)
        with self._build_lock:
            return self._get(key, sitting_id, verify_url, seq)

    def build_ahead(self, seq: int) -> None:
        """The heads moved to `seq` (from the watcher's reader thread, which does not wait):
        the builder builds every open key's state at the newest seq asked."""
        self._wanted = seq
        self._builder.submit(self._build_all, seq)

    def _build_all(self, seq: int) -> None:
        if seq != self._wanted:
            return  # a newer seq was asked meanwhile: built at that one
        with self._keys_lock:
            makers = list(self._makers.items())
        for key, maker in makers:
            try:
                with self._build_lock:
                    self._get(key, key[0], maker, seq)
                    with self._keys_lock:
                        if key not in self._makers:  # its last screen closed meanwhile: forget it again
                            self._built.pop(key, None)
                            self._cursors.pop(key, None)
            except Exception:  # that screen's stream builds it itself and says what failed
                log.exception("screen state of sitting %s at seq %s not built ahead", key[0], seq)

    def _get(self, key: tuple, sitting_id: int, verify_url, seq: int | None) -> dict:
        state = self.ready(key, seq)
        if state is not None:
            return state
        cursor = self._cursors.setdefault(key, AuditCursor())
        state = display.state_for(self.flask_app, sitting_id, verify_url, cursor)
        self._built[key] = (seq, state)
        return state
