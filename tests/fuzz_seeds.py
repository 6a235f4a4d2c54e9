"""One valid request per API operation, for the fuzzer (tests/test_api_fuzz.py): random cases
rarely meet an operation's state (an open round, an issued ballot, a closed one), so each
operation also gets one case built here, on fixtures made for it, and sent through the same
schemathesis case machinery as the random ones. `SEEDS[operationId](ctx)` returns
(caller, path parameters, body); ctx.api is the secretariat's Api (helpers_live), ctx.fresh(**kw)
a new body's sitting (setup_sitting)."""
from __future__ import annotations

import cv2
import numpy as np
from helpers_live import blind_ballot, setup_sitting, vote

from ballot_service.crypto import tablet
from ballot_service.domain import login_limits, tablet_setup

SHEET = {"issued": 3, "returned": 3, "invalid": 0, "counts": {"motion": {"for": 2, "against": 1, "abstain": 0,
                                                                         "void": 0}}}


class Ctx:
    def __init__(self, api, operator, app=None):
        self.api, self.operator, self.app = api, operator, app

    def fresh(self, **kw):
        return setup_sitting(self.api, self.operator, members=3, **kw)

    def call(self, method, url, body=None):
        return self.api.call(method, url, body)[1]


def _tallied(ctx, record=False):
    s = ctx.fresh()
    for no in s.present:
        vote(ctx.api, s.creds[no], {"motion": "for"})
    ctx.call("POST", f"/api/admin/items/{s.item_id}/close")
    ctx.call("POST", f"/api/admin/items/{s.item_id}/tally")
    if record:
        ctx.call("POST", f"/api/admin/items/{s.item_id}/record")
    return s


def _paper_ballot(ctx, handed_out=False):
    s = ctx.fresh(channel="paper")
    ballot = ctx.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": 1})["ballots"][0]
    if handed_out:
        ctx.api.call("POST", "/api/station/hand-out", {"ballots": [ballot]}, credential=s.station)
    return s, ballot


def _cast(ctx):
    s = ctx.fresh()
    ballot = blind_ballot(ctx.api, s.creds[s.present[0]])
    return ("bearer", s.creds[s.present[0]]), {}, {**ballot, "marks": {"motion": "for"},
                                                    "retry_id": tablet.new_retry_id()}


def _tally_sheet(ctx):
    s = ctx.fresh(channel="tally_sheet")
    ctx.call("POST", f"/api/admin/items/{s.item_id}/close")
    return ("bearer", s.counter), {}, {"item_id": s.item_id, "sheet": SHEET}


def _request_not_sent(ctx, url: str, take) -> tuple:
    """The body a tablet's `take` (tablet.take_ballot, take_set_ballots) sends to `url`, caught
    before it is sent: the fuzzer sends it."""
    s = ctx.fresh()
    cred = s.creds[s.present[0]]
    sent = {}

    def call(method, to, body=None, credential=None):
        if to == url:
            sent.update(body)
            raise LookupError  # stop here
        return ctx.api.call(method, to, body, credential=credential)

    try:
        take(call, cred)
    except LookupError:
        pass
    return ("bearer", cred), {}, dict(sent)


def _blinded(ctx):
    """The blind-sign request a tablet sends (its blinded message), not sent."""
    return _request_not_sent(ctx, "/api/terminal/blind-sign", tablet.take_ballot)


def _blinded_set(ctx):
    """The one-request blind-sign of a ballot set (here the open vote alone), not sent."""
    return _request_not_sent(ctx, "/api/terminal/blind-sign-set", tablet.take_set_ballots)


def _replacement(ctx):
    s = ctx.fresh()
    blind_ballot(ctx.api, s.creds[s.present[0]])
    return "secretariat", {"item_id": s.item_id}, {"member": s.present[0], "reason": "表决器故障"}


def _fresh_path(name, **kw):
    def seed(ctx):
        s = ctx.fresh(**kw)
        return "secretariat", {name: {"item_id": s.item_id, "sitting_id": s.sitting_id, "body_id": s.body_id}[name]}, None
    return seed


def _login(ctx):
    """The fuzzer's wrong passwords have locked its address out (login_limits): the right
    password is refused (429) until the administrator lifts the lockout, as here."""
    db = ctx.app.extensions["ballot_sessionmaker"]()
    for address in ("127.0.0.1", None):  # the test client's address, or none
        login_limits.unlock_source(db, address)
    login_limits.unlock_login(db, ctx.operator[0])
    db.commit()
    db.close()
    return "public", {}, {"username": ctx.operator[0], "password": ctx.operator[1]}


def _scanned_page(ctx):
    """A scanned page without a QR code, kept with its image for the tellers."""
    s, _ = _paper_ballot(ctx, handed_out=True)
    client = ctx.app.test_client()
    r = client.post("/api/station/scans", data=_blank_png(),
                    headers={"Authorization": f"Bearer {s.counter}", "Content-Type": "image/png"})
    return s, r.get_json()["pages"][0]["id"]


def _another(ctx):
    """An election whose one seat nobody filled (no ballot cast): 另行选举 may follow."""
    s = ctx.fresh(open_vote=False)
    item = ctx.call("POST", f"/api/admin/sessions/{s.sitting_id}/items",
                    {"key": "el", "kind": "election", "title": "选举主任", "office": "principal", "places": 1,
                     "candidates": [{"key": "A", "title": "甲"}, {"key": "B", "title": "乙"}]})
    for step in ("open", "close", "tally"):
        ctx.call("POST", f"/api/admin/items/{item['id']}/{step}")
    return "secretariat", {"item_id": item["id"]}, {"candidates": ["A", {"key": "D", "title": "新提名"}]}


def _reset(ctx):
    s = ctx.fresh(open_vote=False)
    code = tablet_setup.reset_code(ctx.app.config["SETTINGS"].secret_key, s.sitting_id)
    return ("bearer", s.creds[s.present[0]]), {}, {"code": code}


def _page_by_eye(ctx):
    """A paper ballot read by eye by the 计票人, waiting for the 监票人's decision."""
    s, ballot = _paper_ballot(ctx, handed_out=True)
    page = ctx.api.call("POST", "/api/station/by-eye", {"ballot": ballot, "marks": {"motion": "for"}},
                        credential=s.counter)[1]
    return s, page["id"]


def _blank_png() -> bytes:
    """A white page without a QR code: the station keeps it for the tellers to reject."""
    return cv2.imencode(".png", np.full((400, 300), 255, np.uint8))[1].tobytes()


SEEDS = {
    "terminalState": lambda ctx: (lambda s: (("bearer", s.creds[s.present[0]]), {}, None))(ctx.fresh()),
    "terminalCheckin": lambda ctx: (lambda s: (("bearer", s.creds[s.members[0]]), {}, {"member": s.members[0]}))(
        ctx.fresh(present=0, open_vote=False)),
    "terminalRoundKey": lambda ctx: (lambda s: (("bearer", s.creds[s.present[0]]), {}, None))(ctx.fresh()),
    "terminalBlindSign": _blinded,
    "terminalCast": _cast,
    "terminalBlindSignSet": _blinded_set,
    "terminalCastSet": lambda ctx: (lambda auth, path, body: (auth, path, {"casts": [body]}))(*_cast(ctx)),
    "stationPaper": lambda ctx: (lambda s, b: (("bearer", s.station), {}, {"ballot": b, "marks": {"motion": "for"}}))(
        *_paper_ballot(ctx, handed_out=True)),
    "stationHandOut": lambda ctx: (lambda s, b: (("bearer", s.station), {}, {"ballots": [b]}))(*_paper_ballot(ctx)),
    "stationTallySheet": _tally_sheet,
    "adminLogin": _login,
    "adminLogout": lambda ctx: ("leaver", {}, None),
    "bodyCreate": lambda ctx: ("superuser", {}, {"name": "种子机构", "kind": "congress"}),
    "bodyKeyCreate": lambda ctx: ("superuser", {"body_id": ctx.call("POST", "/api/admin/bodies",
                                                                    {"name": "无密钥机构", "kind": "congress"})["id"]},
                                  None),
    "rosterUpload": lambda ctx: ("secretariat", {"body_id": ctx.fresh().body_id},
                                 {"members": [{"id": "S1", "name": "种子代表", "seat": "S1"}]}),
    "sessionCreate": lambda ctx: ("secretariat", {}, {"body_id": ctx.fresh().body_id, "name": "种子会议"}),
    "sessionClose": _fresh_path("sitting_id", open_vote=False),
    "screenSet": lambda ctx: ("secretariat", {"sitting_id": ctx.fresh().sitting_id}, {"show": "title"}),
    "attendanceGet": _fresh_path("sitting_id"),
    "attendanceSet": lambda ctx: (lambda s: ("secretariat", {"sitting_id": s.sitting_id},
                                             {"members": [s.members[0]], "status": "present"}))(
        ctx.fresh(present=0, open_vote=False)),
    "terminalsCreate": lambda ctx: ("secretariat", {"sitting_id": ctx.fresh().sitting_id},
                                    {"terminals": [{"name": "种子计票站", "kind": "counting_station"}]}),
    "terminalRevoke": lambda ctx: ("secretariat", {"terminal_id": ctx.fresh().station_id}, None),
    "terminalRelease": lambda ctx: ("secretariat", {"terminal_id": ctx.fresh().station_id}, None),
    "itemCreate": lambda ctx: ("secretariat", {"sitting_id": ctx.fresh().sitting_id},
                               {"key": "seed", "kind": "resolution", "title": "种子决议"}),
    "itemEdit": lambda ctx: ("secretariat", {"item_id": ctx.fresh(open_vote=False).item_id},
                             {"key": "seed", "kind": "election", "title": "选举主任", "office": "principal",
                              "places": 1, "candidates": [{"key": "A", "title": "甲"}, {"key": "B", "title": "乙"}]}),
    "itemOpen": _fresh_path("item_id", open_vote=False),
    "itemClose": _fresh_path("item_id"),
    "itemQuorumFailed": _fresh_path("item_id", present=1, open_vote=False),
    "itemTally": lambda ctx: (lambda s: ("secretariat", {"item_id": s.item_id}, None))(
        (lambda s: (ctx.call("POST", f"/api/admin/items/{s.item_id}/close"), s)[1])(ctx.fresh())),
    "itemRecord": lambda ctx: ("secretariat", {"item_id": _tallied(ctx).item_id}, None),
    "itemPublish": lambda ctx: ("secretariat", {"item_id": _tallied(ctx, record=True).item_id}, None),
    "itemExtend": lambda ctx: ("secretariat", {"item_id": ctx.fresh().item_id}, {"minutes": 5}),
    "itemReplacement": _replacement,
    "itemPaperBallots": lambda ctx: ("secretariat", {"item_id": ctx.fresh(channel="paper").item_id}, {"count": 1}),
    "sessionResults": _fresh_path("sitting_id"),
    "terminalReset": _reset,
    "stationMe": lambda ctx: (("bearer", ctx.fresh(channel="paper").counter), {}, None),
    "stationBoard": lambda ctx: (("bearer", ctx.fresh(channel="paper").counter), {}, None),
    "stationQueue": lambda ctx: (("bearer", ctx.fresh(channel="paper").counter), {}, None),
    "stationCountReport": lambda ctx: (("bearer", ctx.fresh(channel="paper").counter), {}, None),
    "stationScans": lambda ctx: (("bearer", _paper_ballot(ctx, handed_out=True)[0].counter), {}, _blank_png(),
                                 "image/png"),
    "stationBallotInfo": lambda ctx: (lambda s, b: (("bearer", s.counter), {}, {"ballot": b}))(*_paper_ballot(ctx)),
    "stationByEye": lambda ctx: (lambda s, b: (("bearer", s.counter), {}, {"ballot": b, "marks": {"motion": "for"}}))(
        *_paper_ballot(ctx, handed_out=True)),
    "stationDecision": lambda ctx: (lambda s, pid: (("bearer", s.scrutineer), {"page_id": pid},
                                                    {"decision": {"marks": {"motion": "for"}}}))(*_page_by_eye(ctx)),
    "stationPageImage": lambda ctx: (lambda s, pid: (("bearer", s.counter), {"page_id": pid}, None))(
        *_scanned_page(ctx)),
    "stationRecount": lambda ctx: (lambda s: (("bearer", s.counter), {"item_id": s.item_id}, None))(
        ctx.fresh(channel="paper")),
    "itemAnother": _another,
    "terminalRosterSearch": lambda ctx: (lambda s: (("bearer", s.creds[s.present[0]]), {}, None))(ctx.fresh()),
}
