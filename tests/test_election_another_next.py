"""A 另行选举 saved for the next sitting (issue 20 item 3): the console's one step names a later
sitting of the same body and creates there a draft election item for the unfilled seats, linked
to the election (Item.another_of), its round a 另行选举 on the 差额 of 组织法 art. 27/29/30; the
election's record can then be signed and says where its seats went; both records and the
audit bundle hold the link. Refused: another body's sitting, a closed one, the same one, no
unfilled seat, twice."""
from __future__ import annotations

import json
from types import SimpleNamespace as NS

from bundle_support import export_and_verify
from console_support import flashes, post
from display_support import get_state
from helpers_live import Api, publish, setup_sitting, vote
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from terminal_support import query

from ballot_service.domain.election_items import another_slate
from ballot_service.models import Candidate, Item, Record, Round
from ballot_service.render import election_pdf, record_pdf
from ballot_service.render.election_announcement import announcement, names_of
from ballot_service.rules import election as er


def _election(api, sid, *, office="principal", places=1, cands=("A", "B"), **extra):
    spec = {"key": "el", "kind": "election", "title": "选举县监察委员会主任", "office": office, "places": places,
            "candidates": [{"key": k, "title": f"候选人{k}"} for k in cands], **extra}
    return api.call("POST", f"/api/admin/sessions/{sid}/items", spec)[1]["id"]


def _vote_round(api, creds, item_id, ballots):
    api.call("POST", f"/api/admin/items/{item_id}/open")
    for cred, marks in zip(creds, ballots):
        vote(api, cred, marks)
    api.call("POST", f"/api/admin/items/{item_id}/close")
    return api.call("POST", f"/api/admin/items/{item_id}/tally")[1]


def _next_sitting(api, s, name="第二次会议", *, seats=False):
    """A later sitting of the body; with `seats`, its seat tablets, every member checked in."""
    sid = api.call("POST", "/api/admin/sessions", {"body_id": s.body_id, "name": name})[1]["id"]
    if not seats:
        return sid, []
    _, terms = api.call("POST", f"/api/admin/sessions/{sid}/terminals", {"terminals": [
        {"name": f"席位{no}", "kind": "seat", "seat": no} for no in s.members]})
    creds = [t["credential"] for t in terms["terminals"]]
    for no, cred in zip(s.members, creds):
        api.call("POST", "/api/terminal/checkin", {"member": no}, credential=cred)
    return sid, creds


def _unfilled(api, **kw):
    """A sitting of 7 deputies whose election of one 主任 elected nobody (A 3, B 2)."""
    s = setup_sitting(api, members=7, open_vote=False)
    item_id = _election(api, s.sitting_id, **kw)
    result = _vote_round(api, list(s.creds.values()), item_id, [{"B": "for"}] * 2 + [{"A": "for"}] * 3)
    assert result["unfilled"] == 1
    return s, item_id


def _record(app, api, item_id):
    """The signed record's content; its PDF is drawn (the conclusion lines are what it prints)."""
    _, rec = api.call("POST", f"/api/admin/items/{item_id}/record")
    (body, sig), = query(app, select(Record.body_json, Record.signature).where(Record.id == rec["id"]))
    content = json.loads(body)
    assert record_pdf.render(content, sig)[:4] == b"%PDF"
    return content


def _pdf_words(content):
    return "".join(election_pdf.conclusion(content["result"], content["item"], names_of(content["item"])))


def test_saved_for_the_next_sitting_then_held_there_and_both_records_say_so(app, api, settings_env, tmp_path):
    s, item_id = _unfilled(api)
    sid2, creds2 = _next_sitting(api, s, seats=True)
    status, data = api.call("POST", f"/api/admin/items/{item_id}/another", {"sitting_id": sid2}, expect=None)
    assert status == 201, data
    # default: the nominees not elected, in first-round vote order, as many as art. 27 allows (正职: 2)
    assert (data["sitting_id"], data["places"], data["candidates"]) == (sid2, 1, ["A", "B"])
    (later,), = query(app, select(Item).where(Item.id == data["item_id"]))
    assert (later.sitting_id, later.another_of, later.status, later.office) == (sid2, item_id, "draft", "principal")
    (rnd,), = query(app, select(Round).where(Round.item_id == later.id))
    assert (rnd.number, rnd.stage, rnd.places, rnd.status) == (1, "another", 1, "pending")
    # the election itself has no pending round: its record is signed and names the later sitting
    assert {r.status for (r,) in query(app, select(Round).where(Round.item_id == item_id))} == {"tallied"}
    content = _record(app, api, item_id)
    assert content["item"]["another_next"]["session"] == {"id": sid2, "name": "第二次会议"}
    assert "尚缺1名，另行选举于第二次会议进行。" in announcement(content)
    assert "另行选举于第二次会议进行" in _pdf_words(content)
    assert api.call("POST", f"/api/admin/items/{item_id}/another", {"sitting_id": sid2}, expect=None)[0] == 409
    assert api.call("POST", f"/api/admin/items/{item_id}/another", {}, expect=None)[0] == 409
    # held in the next sitting: more than half of all 7 deputies elects
    result = _vote_round(api, creds2, later.id, [{"A": "for"}] * 4 + [{"B": "for"}] * 3)
    assert result["stage"] == "another" and result["elected"] == ["A"] and result["threshold_votes"] == 4
    content = _record(app, api, later.id)
    assert content["item"]["another_of"]["session"]["name"] == "第一次会议"
    words = announcement(content)
    assert words.startswith("本项为第一次会议《选举县监察委员会主任》尚缺名额的另行选举。")
    assert "候选人A当选为县监察委员会主任" in words
    assert "本项为第一次会议《选举县监察委员会主任》尚缺名额的另行选举。" in _pdf_words(content)
    export_and_verify(settings_env, tmp_path / "bundle")


def test_saving_is_refused_for_another_body_a_closed_or_the_same_sitting(app, api):
    s, item_id = _unfilled(api)
    other_body = api.call("POST", "/api/admin/bodies", {"name": "另一个人大", "kind": "congress"})[1]["id"]
    foreign = api.call("POST", "/api/admin/sessions", {"body_id": other_body, "name": "第一次会议"})[1]["id"]
    status, data = api.call("POST", f"/api/admin/items/{item_id}/another", {"sitting_id": foreign}, expect=None)
    assert status == 404 and "本级人大" in data["errors"][0]["message_zh"]
    status, data = api.call("POST", f"/api/admin/items/{item_id}/another", {"sitting_id": s.sitting_id},
                            expect=None)
    assert status == 400 and data["errors"][0]["where"] == "sitting_id" and "本次会议" in data["errors"][0]["message_zh"]
    closed, _ = _next_sitting(api, s, "第二次会议")
    api.call("POST", f"/api/admin/sessions/{closed}/close")
    status, data = api.call("POST", f"/api/admin/items/{item_id}/another", {"sitting_id": closed}, expect=None)
    assert status == 409 and "已闭会" in data["errors"][0]["message_zh"]
    status, data = api.call("POST", f"/api/admin/items/{item_id}/another", {"sitting_id": "2"}, expect=None)
    assert status == 400
    assert query(app, select(Item.id).where(Item.another_of == item_id)) == []


def test_no_unfilled_seat_and_a_slate_against_the_difference_are_refused(app, api):
    s = setup_sitting(api, members=7, open_vote=False)
    item_id = _election(api, s.sitting_id)
    _vote_round(api, list(s.creds.values()), item_id, [{"A": "for"}] * 4 + [{"B": "for"}] * 3)
    sid2, _ = _next_sitting(api, s)
    status, data = api.call("POST", f"/api/admin/items/{item_id}/another", {"sitting_id": sid2}, expect=None)
    assert status == 409 and "全部选出" in data["errors"][0]["message_zh"]
    s, item_id = _unfilled(api)
    sid2, _ = _next_sitting(api, s)
    status, data = api.call("POST", f"/api/admin/items/{item_id}/another",
                            {"sitting_id": sid2, "candidates": ["A", "B", {"key": "N", "title": "新提名"}]},
                            expect=None)  # 正职: one more than seats
    assert status == 400 and "组织法第二十七条" in data["errors"][0]["message"]
    status, data = api.call("POST", f"/api/admin/items/{item_id}/another",
                            {"sitting_id": sid2, "candidates": ["A", {"key": "N", "title": "新提名"}]})
    assert data["candidates"] == ["A", "N"]
    def names(of):
        return query(app, select(Candidate.key, Candidate.title).where(Candidate.item_id == of)
                     .order_by(Candidate.position))
    assert [tuple(r) for r in names(data["item_id"])] == [("A", "候选人A"), ("N", "新提名")]
    # the new nominee went to the later item, not to the election already voted
    assert [r[0] for r in names(item_id)] == ["A", "B"]


def test_a_by_election_moves_its_seats_with_the_art_30_difference(app, api):
    """补选 (art. 30): 等额 or 差额, no upper limit — every nominee not elected goes, in vote order."""
    s = setup_sitting(api, members=7, open_vote=False)
    item_id = _election(api, s.sitting_id, office="committee_member", places=2, cands=("A", "B", "C"),
                        by_election=True)
    _vote_round(api, list(s.creds.values()), item_id,
                [{"A": "for"}] * 4 + [{"B": "for"}] * 2 + [{"C": "for"}])
    sid2, _ = _next_sitting(api, s)
    status, data = api.call("POST", f"/api/admin/items/{item_id}/another",
                            {"sitting_id": sid2, "candidates": []}, expect=None)
    assert status == 400 and "组织法第三十条" in data["errors"][0]["message"]
    _, data = api.call("POST", f"/api/admin/items/{item_id}/another", {"sitting_id": sid2})
    assert (data["places"], data["candidates"]) == (1, ["B", "C"])
    (later,), = query(app, select(Item).where(Item.id == data["item_id"]))
    assert (later.by_election, later.office, later.places) == (True, "committee_member", 1)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(er.OFFICES)), st.integers(1, 12), st.booleans(), st.integers(0, 20))
def test_the_default_slate_of_moved_seats_keeps_the_difference(office, seats, by_election, losers):
    """The default candidates of a 另行选举 (this sitting or the next) are never more than the
    差额 allows, and are refused (not silently short) when too few nominees remain."""
    lo, hi, article = er.candidate_range(office, seats, by_election=by_election)
    item = _decided(office, seats, by_election, losers)
    try:
        got_seats, keys, new, slate = another_slate(_NoDb(), item, None)
    except Exception as exc:  # refused: too few nominees left for the seats
        assert losers < lo and article in str(exc)
        return
    lo, hi, _ = er.candidate_range(office, seats, by_election=by_election, nominees=len(keys))  # 等额 1 of 1 (art. 27)
    assert got_seats == seats and new == [] and lo <= len(keys) and (hi is None or len(keys) <= hi)
    assert slate.article.startswith(article) and (hi is not None or len(keys) == losers)
    assert keys == [f"K{i}" for i in range(len(keys))]  # first-round vote order, most first


class _NoDb:
    """Neither signed record nor later item exists."""

    def scalar(self, _query):
        return None


def _decided(office, seats, by_election, losers):
    cands = [NS(key=f"K{i}", title=f"候选人{i}") for i in range(losers)]
    first = {"stage": "first", "status": "decided", "places": seats, "elected": [], "unfilled": seats,
             "candidates": [{"key": c.key, "for": 100 - i} for i, c in enumerate(cands)], "write_ins": [],
             **dict.fromkeys(("members", "present", "quorum_met", "issued", "returned", "valid", "invalid",
                              "refused", "not_voted"), 0)}
    rnd = NS(status="tallied", result=first)
    return NS(kind="election", key="el", status="decided", rounds=[rnd], office=office, by_election=by_election,
              candidates=cands, id=1)


def test_the_console_saves_it_for_a_chosen_later_sitting_in_one_step(app, console):
    api = Api.flask(app.test_client())
    s, item_id = _unfilled(api)
    sid2, _ = _next_sitting(api, s)
    page = console.get(f"/console/items/{item_id}").get_data(as_text=True)
    assert 'id="another-sitting"' in page and f'<option value="{sid2}">下次会议：第二次会议</option>' in page
    r = post(console, f"/console/items/{item_id}/another", {"candidates": "", "sitting_id": str(s.sitting_id)},
             follow_redirects=True)
    assert "本次会议" in flashes(r)[-1][1]  # the same sitting is the other path
    r = post(console, f"/console/items/{item_id}/another", {"candidates": "A\nN | 新提名", "sitting_id": str(sid2)},
             follow_redirects=True)
    assert ("ok", "已安排另行选举：已在所选会次新建选举事项。") in flashes(r)
    assert 'id="another-next"' in r.get_data(as_text=True) and 'id="another-form"' not in r.get_data(as_text=True)
    (later,), = query(app, select(Item.id).where(Item.another_of == item_id))
    page = console.get(f"/console/items/{later}").get_data(as_text=True)
    assert 'id="another-of"' in page and "第一次会议《选举县监察委员会主任》" in page


def test_the_saved_item_edited_before_its_vote_stays_a_further_election(app, api):
    s, item_id = _unfilled(api)
    sid2, _ = _next_sitting(api, s)
    later = api.call("POST", f"/api/admin/items/{item_id}/another", {"sitting_id": sid2})[1]["item_id"]
    spec = {"key": "el-另行选举", "kind": "election", "title": "选举县监察委员会主任", "office": "principal",
            "places": 1, "candidates": [{"key": "A", "title": "候选人A"}, {"key": "C", "title": "候选人C"}]}
    api.call("PUT", f"/api/admin/items/{later}", spec)
    (rnd,), = query(app, select(Round).where(Round.item_id == later))
    assert (rnd.stage, rnd.candidate_keys) == ("another", ["A", "C"])


def test_the_saved_item_named_by_a_signed_record_cannot_be_deleted(app, console):
    api = Api.flask(app.test_client())
    s, item_id = _unfilled(api)
    sid2, _ = _next_sitting(api, s)
    later = api.call("POST", f"/api/admin/items/{item_id}/another", {"sitting_id": sid2})[1]["item_id"]
    api.call("POST", f"/api/admin/items/{item_id}/record")
    r = post(console, f"/console/items/{later}/delete", {}, follow_redirects=True)
    assert "不能删除" in flashes(r)[-1][1]
    assert query(app, select(Item.id).where(Item.id == later)) == [(later,)]


def test_the_presiding_screen_names_the_sitting_the_seats_went_to(app, api, screen):
    s, item_id = _unfilled(api)
    sid2, _ = _next_sitting(api, s)
    api.call("POST", f"/api/admin/items/{item_id}/another", {"sitting_id": sid2})
    publish(api, item_id)
    r = get_state(screen, s.sitting_id)["result"]
    assert (r["unfilled"], r["another_in"]) == (1, "第二次会议")
