"""Setting tablets up (issue #17 item 17): one QR code per seat tablet on the credentials page,
and never a QR code or link naming 127.0.0.1 without the console saying how to set the public
address; `demo --host 0.0.0.0` uses this machine's LAN address."""
from __future__ import annotations

import dataclasses
import re

from console_support import post
from helpers_live import Api, setup_sitting

from ballot_service.cli.serve_cmd import lan_public_url


def test_each_seat_tablet_gets_a_set_up_qr_code(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, open_vote=False)
    r = post(console, f"/console/sessions/{s.sitting_id}/terminals", {"stations": "1"})
    api.call("POST", f"/api/admin/terminals/{s.terminal_ids['M0001']}/revoke")
    r = post(console, f"/console/sessions/{s.sitting_id}/terminals", {"seat": "M0001", "stations": "1"})
    html = r.get_data(as_text=True)
    rows = re.findall(r'<tr data-seat="([^"]*)" data-kind="(\w+)">(.*?)</tr>', html, re.S)
    assert [(seat, kind, "<svg" in body) for seat, kind, body in rows] == [("M0001", "seat", True),
                                                                           ("", "counting_station", False)]


def test_the_console_says_how_to_set_the_public_address_when_links_name_the_loopback(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=2, open_vote=False)
    page = console.get(f"/console/sessions/{s.sitting_id}").get_data(as_text=True)  # http://localhost/
    assert 'id="public-address-warning"' in page and "BALLOT_PUBLIC_URL=" in page
    app.config["SETTINGS"] = dataclasses.replace(app.config["SETTINGS"], public_url="http://10.0.0.5:8000")
    page = console.get(f"/console/sessions/{s.sitting_id}").get_data(as_text=True)
    assert 'id="public-address-warning"' not in page


def test_demo_on_every_interface_uses_the_lan_address():
    assert lan_public_url("0.0.0.0", 8000, False, "192.168.1.10") == "http://192.168.1.10:8000"
    assert lan_public_url("0.0.0.0", 8443, True, "192.168.1.10") == "https://192.168.1.10:8443"
    assert lan_public_url("127.0.0.1", 8000, False, "192.168.1.10") is None
    assert lan_public_url("0.0.0.0", 8000, False, None) is None
