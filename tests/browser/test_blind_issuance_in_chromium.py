"""Blind issuance on real tablets (Chromium): a whole secret vote on two tablets through the
blind-signature flow, a tablet that refuses a round key which is not the announced one, a
tablet whose blind signature answer was lost and that asks again after a reload, and
a paper vote, which asks a tablet for nothing."""
from __future__ import annotations

import json

from helpers_live import setup_sitting
from sqlalchemy import create_engine, select
from test_seat_tablets import check_in, mark, open_tablet, screen, storage

from ballot_service.crypto import blind_rsa
from ballot_service.formats.encoding import b64url_encode
from ballot_service.models import Cast, Issuance, Round


def _rows(db_url, stmt):
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(stmt).all()
    finally:
        engine.dispose()


def test_secret_vote_on_two_tablets_through_blind_issuance(new_page, live_site, db_url):
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=2, present=0, open_vote=False)
    a, b = (open_tablet(new_page, base, s.creds[no]) for no in ("M0001", "M0002"))
    check_in(a, "M0001")
    check_in(b, "M0002")
    sent: list[dict] = []
    for page in (a, b):
        page.on("request", lambda req: sent.append({"url": req.url, "headers": req.headers,
                                                    "body": req.post_data}) if req.method == "POST" else None)
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    for page, choice in ((a, "for"), (b, "against")):
        screen(page, "ballot", timeout=20_000)
        assert "ballotSeat.ballot" in storage(page)  # kept until the receipt
        mark(page, "motion", choice)
        page.click("#ballot-submit")
        screen(page, "confirm")
        page.click("#confirm-send")
        screen(page, "receipt", timeout=20_000)
        left = storage(page)
        assert not any(k in left for k in ("ballotSeat.ballot", "ballotSeat.pending")), left
        assert page.js_errors == []
    # What went over the wire: one blinded message per tablet, and anonymous casts.
    signs = [r for r in sent if r["url"].endswith("/api/terminal/blind-sign")]
    casts = [r for r in sent if r["url"].endswith("/api/terminal/cast")]
    assert len(signs) == 2 and len(casts) == 2
    for r in casts:
        body = json.loads(r["body"])
        assert set(body) == {"round_ref", "serial", "prefix", "signature", "marks", "retry_id", "receipt_hash"}
        assert "authorization" not in {k.lower() for k in r["headers"]}
        assert body["serial"] not in "".join(x["body"] for x in signs)  # the server never saw it
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    _, res = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    motion = res["candidates"][0]
    assert (motion["for"], motion["against"], res["issued"], res["returned"]) == (1, 1, 2, 2)
    assert _rows(db_url, select(Round.blind_private_key))[0][0] is None
    assert sorted(r[0] for r in _rows(db_url, select(Issuance.issued))) == [1, 1]
    assert all(r[0] is None for r in _rows(db_url, select(Cast.member_id)))


def test_tablet_refuses_a_round_key_that_is_not_the_announced_one(new_page, live_site):
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=2, present=2, open_vote=False)
    page = open_tablet(new_page, base, s.creds["M0001"])
    screen(page, "waiting")
    asked: list[str] = []
    page.on("request", lambda req: asked.append(req.url))

    other_key = b64url_encode(blind_rsa.public_key_der(blind_rsa.generate_round_key()))

    def swap_key(route):  # a man in the middle offers another key under the real announcement
        resp = route.fetch()
        if resp.status != 200 or not (resp.json() or {}).get("vote"):
            return route.fulfill(response=resp)
        state = resp.json()
        state["vote"]["round_key"]["data"]["public_key_der"] = other_key
        route.fulfill(response=resp, body=json.dumps(state), headers={**resp.headers, "content-type": "application/json"})

    page.route("**/api/terminal/state*", swap_key)
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    refused = screen(page, "refused", timeout=20_000)
    assert "公布" in refused.inner_text() or "announced" in refused.inner_text()
    assert not any(u.endswith("/api/terminal/blind-sign") for u in asked)


def test_a_paper_vote_puts_no_tablet_on_the_key_alarm(new_page, live_site):
    """A paper vote has no round key: the state's vote carries none, and the tablet says the
    vote is on paper, asks for no key or signature, and never shows the key-mismatch alarm."""
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=2, present=1, open_vote=False, channel="paper")
    page = open_tablet(new_page, base, s.creds["M0002"])
    check_in(page, "M0002")
    asked: list[str] = []
    page.on("request", lambda req: asked.append(req.url))
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    page.locator("#paper-note").wait_for(state="visible", timeout=20_000)
    assert "纸质选票" in page.locator("#paper-note").inner_text()
    assert page.locator('section[data-screen="refused"]').is_hidden()
    assert page.locator("#noballot-note").is_hidden()
    assert not any("/round-key" in u or "/blind-sign" in u for u in asked)
    assert page.js_errors == []


def test_a_lost_blind_signature_answer_is_asked_again_with_the_same_blinded_message(new_page, live_site, db_url):
    """The server counted and signed, the answer never arrived (a node died, the connection
    dropped), and the deputy reloads the page: the tablet sends the very same blinded message
    (kept in localStorage), gets the same signature, and votes with it: one ballot issued."""
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=2, present=1, open_vote=False)  # M0001 present, never asks
    page = open_tablet(new_page, base, s.creds["M0002"])
    check_in(page, "M0002")
    bodies: list[str] = []

    def lose_the_first_answer(route):
        bodies.append(route.request.post_data)
        answer = route.fetch()  # the server counts and signs ...
        if len(bodies) == 1:
            return route.abort("connectionreset")  # ... and the tablet never hears of it
        route.fulfill(response=answer)

    page.route("**/api/terminal/blind-sign", lose_the_first_answer)
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    for _ in range(200):
        if bodies:
            break
        page.wait_for_timeout(100)
    assert bodies, "the tablet never asked for its ballot"
    assert "ballotSeat.blinding" in storage(page)
    page.reload()
    screen(page, "ballot", timeout=20_000)
    assert len(bodies) >= 2 and len(set(bodies)) == 1, bodies  # the same request, not a second ballot
    assert "ballotSeat.blinding" not in storage(page)
    mark(page, "motion", "for")
    page.click("#ballot-submit")
    screen(page, "confirm")
    page.click("#confirm-send")
    screen(page, "receipt", timeout=20_000)
    assert page.js_errors == []
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    _, res = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert (res["issued"], res["returned"], res["candidates"][0]["for"]) == (1, 1, 1)
    assert [r[0] for r in _rows(db_url, select(Issuance.blinded_sha256))] == [None, None]  # cleared at the close
