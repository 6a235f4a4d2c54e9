"""The secretariat's console (HTML): login, sittings, roster, check-in, items, votes,
records and the audit bundle. Thin: every action calls the same domain functions as the
JSON API, and a refusal is shown as a message on the page it came from.

The blueprint is `blueprint.bp`; importing the feature modules below registers their routes."""
from __future__ import annotations

from ballot_service.web.console import (  # noqa: F401  (each registers its routes on bp)
    audit,
    bodies,
    common,
    elections,
    item_drafts,
    items,
    login,
    printing,
    projects,
    records,
    roster,
    sittings,
    terminals,
)
from ballot_service.web.console.blueprint import bp

__all__ = ["bp"]
