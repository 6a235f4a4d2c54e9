"""The seat terminal page (席位终端): the tablet at each deputy's seat.

`GET /seat` is an empty shell. It holds no session data: everything it shows comes from the
terminal JSON API (terminal_api.py, openapi.yaml), called by static/seat.js with the tablet's
credential (`Authorization: Bearer …`). The secretariat sets a tablet up once by opening
`/seat#credential=…`; the script moves the credential into localStorage and removes it from
the address bar. The fragment never reaches the server, so the credential is in no access log.

Marks and over-voting: see the comment at the top of static/seat.js.
"""
from __future__ import annotations

from flask import Blueprint

from ballot_service.vocab import Role
from ballot_service.web.common import device_page
from ballot_service.web.roles import requires

bp = Blueprint("seat", __name__)


@bp.get("/seat")
@requires(Role.PUBLIC)
def seat_page():
    return device_page("seat/seat.html")
