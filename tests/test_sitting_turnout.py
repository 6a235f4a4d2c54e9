"""Who has not voted yet, on the console (issue #17 item 17): the number for a secret vote, the
deputies' names for a named vote."""
from __future__ import annotations

from helpers_live import Api, setup_sitting, vote


def progress(console, item_id):
    return console.get(f"/console/items/{item_id}/progress").get_json()


def test_a_secret_vote_shows_how_many_have_not_voted_and_no_names(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=4, present=3, open_vote=True)
    vote(api, s.creds["M0001"], {"motion": "for"})
    p = progress(console, s.item_id)
    assert (p["not_voted"], p["not_voted_names"]) == (2, None)
    page = console.get(f"/console/items/{s.item_id}").get_data(as_text=True)
    assert 'id="not-voted">2<' in page and "代表M0002" not in page and "只显示人数" in page


def test_a_named_vote_lists_who_has_not_voted(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=4, present=3, secret=False, open_vote=True)
    vote(api, s.creds["M0002"], {"motion": "for"})
    p = progress(console, s.item_id)
    assert (p["not_voted"], p["not_voted_names"]) == (2, ["代表M0001", "代表M0003"])
    page = console.get(f"/console/items/{s.item_id}").get_data(as_text=True)
    assert "代表M0001、代表M0003" in page
