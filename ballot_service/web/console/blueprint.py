"""The console's one blueprint, `console`: each feature module registers its routes on it
(templates name them `console.*` in url_for)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__)
