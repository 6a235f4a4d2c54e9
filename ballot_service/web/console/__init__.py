"""The secretariat's console (HTML): login, sittings, roster, check-in, items, votes,
records and the audit bundle. Thin: every action calls the same domain functions as the
JSON API, and a refusal is shown as a message on the page it came from.

One blueprint, `console`, shared by the feature modules imported below: importing each
registers its routes on `bp` (templates name them `console.*` in url_for)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__)

from ballot_service.web.console import (  # noqa: E402, F401  (each registers its routes on bp)
    audit,
    bodies,
    common,
    items,
    login,
    printing,
    records,
    roster,
    sittings,
    terminals,
)

