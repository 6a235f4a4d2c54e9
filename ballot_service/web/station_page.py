"""The counting-station page (计票站): the tellers' laptop at the counting table.

`GET /station` is an empty shell, like the seat page: static/station.js fills it from the
station API (station_api.py, station_scan_api.py) with the teller's counting-station
credential, typed or pasted once into the page and kept in the tab's sessionStorage (closing
the tab logs the teller out; a second teller logs in with their own credential).
"""
from __future__ import annotations

from flask import Blueprint

from ballot_service.vocab import Role
from ballot_service.web.common import device_page
from ballot_service.web.roles import requires

bp = Blueprint("station_page", __name__)


@bp.get("/station")
@requires(Role.PUBLIC)
def station_page():
    return device_page("station/station.html")
