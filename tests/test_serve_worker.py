"""`serve`'s worker factory (cli/serve_cmd.asgi_app): the start-up heap is frozen out of Python's
full garbage collections, which otherwise stopped a worker for 120-200 ms under casting."""
from __future__ import annotations

import gc
import sys

from ballot_service.cli import serve_cmd


def test_worker_factory_freezes_the_start_up_heap(monkeypatch):
    monkeypatch.setattr(serve_cmd, "create_app", lambda: "flask app")
    monkeypatch.setattr(serve_cmd, "create_asgi_app", lambda app, threads: ("asgi", app, threads))
    interval = sys.getswitchinterval()
    gc.unfreeze()
    try:
        assert serve_cmd.asgi_app() == ("asgi", "flask app", 16)
        assert gc.get_freeze_count() > 10_000  # the modules and everything made at start-up
        assert sys.getswitchinterval() == serve_cmd.SWITCH_INTERVAL_S
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)
