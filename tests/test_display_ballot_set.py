"""The presiding screen and the console for a ballot set on tablets (issue 20): while the set
is voted, closed and counted every election of the ballot is on the screen with its own
count (no figure of any choice), after publication each with its own result, in the ballot's
order (主任, 副主任, 委员); a re-vote among the tied opens only that election, and the tablet
and the screen then show only it."""
from __future__ import annotations

from display_support import CHOICE_KEYS, get_state, keys_in
from helpers_live import OPERATOR, login_client, publish
from test_ballot_set_tablet import _casts, _set_sitting

from ballot_service.crypto import tablet

# 5 deputies: 主任 A 4 (elected); 副主任 C 4, D 3, E 3 (D and E tie for the second seat); 委员 F G 5, H 3
VOTES = [({"A": "for"}, {"C": "for", "D": "for"}, {"F": "for", "G": "for", "H": "for"}),
         ({"A": "for"}, {"C": "for", "D": "for"}, {"F": "for", "G": "for", "H": "for"}),
         ({"A": "for"}, {"C": "for", "E": "for"}, {"F": "for", "G": "for", "H": "for"}),
         ({"A": "for"}, {"C": "for", "E": "for"}, {"F": "for", "G": "for", "I": "for"}),
         ({"B": "for"}, {"D": "for", "E": "for"}, {"F": "for", "G": "for", "I": "for"})]


def _vote_set(api, s, who, votes):
    for no, marks in zip(who, votes):
        api.call("POST", "/api/terminal/cast-set", {"casts": _casts(tablet.take_set_ballots(api.call, s.creds[no]),
                                                                    marks)})


def test_the_screen_and_the_console_show_every_election_of_the_set(app, api, screen):
    s, ids = _set_sitting(api)
    _vote_set(api, s, s.members[:2], VOTES[:2])
    state = get_state(screen, s.sitting_id)
    assert state["mode"] == "voting" and state["vote"]["item_id"] == ids[0]
    listed = state["vote"]["set"]
    assert [v["key"] for v in listed] == ["zr", "fzr", "wy"] and [v["voted"] for v in listed] == [2, 2, 2]
    assert [v["places"] for v in listed] == [1, 2, 3] and len({v["round"] for v in listed}) == 1
    assert not keys_in(state) & CHOICE_KEYS                            # counts only, never how
    console = login_client(app, OPERATOR)
    progress = console.get(f"/console/items/{ids[1]}/progress").get_json()
    assert [(m["title"], m["returned"]) for m in progress["ballot_set"]] == [("选举zr", 2), ("选举fzr", 2), ("选举wy", 2)]
    page = console.get(f"/console/items/{ids[1]}").get_data(as_text=True)
    assert 'id="set-progress"' in page and page.count('class="set-returned">2<') == 3

    _vote_set(api, s, s.members[2:], VOTES[2:])
    api.call("POST", f"/api/admin/items/{ids[0]}/close")
    state = get_state(screen, s.sitting_id)
    assert state["mode"] == "counting" and [v["voted"] for v in state["vote"]["set"]] == [5, 5, 5]
    api.call("POST", f"/api/admin/items/{ids[0]}/tally")
    rec = publish(api, ids[0])
    state = get_state(screen, s.sitting_id)
    assert state["mode"] == "result"
    first, vice, committee = state["result"]["set"]
    assert first["elected_count"] == 1 and first["status"] == "decided"
    assert first["record"]["id"] == rec["id"] and first["record"]["verify_url"].endswith(rec["id"])
    # the tie for 副主任's second seat is shown at once (the hall votes again); 委员 awaits publication
    assert vice["status"] == "runoff_pending" and vice["tied_count"] == 2
    assert committee == {"item_id": ids[2], "key": "wy", "title": "选举wy", "kind": "election", "pending": True,
                         "status": "decided", "record": None}
    rec_wy = publish(api, ids[2])
    committee = get_state(screen, s.sitting_id)["result"]["set"][2]
    assert committee["record"]["id"] == rec_wy["id"] != rec["id"]  # each election its own record
    assert [p["title"] for p in committee["nominees"] if p["elected"]] == ["候选人F", "候选人G", "候选人H"]

    # the re-vote among the tied opens 副主任 alone: one ballot of one election on the tablet
    api.call("POST", f"/api/admin/items/{ids[1]}/open")
    _, seat = api.call("GET", "/api/terminal/state", credential=s.creds[s.members[0]])
    assert [v["key"] for v in seat["vote"]["ballot_set"]] == ["fzr"]
    assert [c["key"] for c in seat["vote"]["ballot_set"][0]["candidates"]] == ["D", "E"]
    state = get_state(screen, s.sitting_id)
    assert [v["key"] for v in state["vote"]["set"]] == ["fzr"] and state["vote"]["round"] == 2
