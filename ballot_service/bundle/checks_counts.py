"""Check 6: counts.json lists exactly the items and rounds of the event log, with the
figures the log froze when each vote opened and closed, and names every ballots and record
file in the folder once; a tally sheet was entered and confirmed by two registered tellers
(different credentials, counter and scrutineer) and issues no more ballots than were present."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ballot_service import rules
from ballot_service.bundle import layout
from ballot_service.bundle.checks_chain import EventIndex
from ballot_service.bundle.errors import fail
from ballot_service.bundle.readers import files_under, read_counts
from ballot_service.numbers import is_int
from ballot_service.vocab import (
    BLIND_CHANNELS,
    Channel,
    ElectionStage,
    ItemKind,
    RoundStatus,
    TellerRole,
    TerminalKind,
    values,
)

C = layout.COUNTS  # the place every failure of this check points to


def check_counts(b: Path, x: EventIndex) -> tuple[list[dict], dict[int, rules.Rule]]:
    """6. Returns counts.json's items and each item's rule, by item id."""
    citems, scope = read_counts(b)
    x.scope_sitting = scope["session_id"]
    ids = [i.get("id") if isinstance(i, dict) else None for i in citems]
    if ids != sorted(set(i for i in ids if is_int(i))) or len(ids) != len(set(ids)):
        fail("counts.json: items must be listed once each, by id: an item was moved, repeated or damaged", C)
    # A session's bundle lists that session's items; the chain is the body's, all of it.
    x.items_in_scope = {i for i, d in x.item_created.items()
                        if scope["session_id"] is None or d.get("session_id") == scope["session_id"]}
    if set(ids) != x.items_in_scope:
        missing = sorted(x.items_in_scope - set(ids))
        fail(f"counts.json does not list the same items as the event log"
             f"{' (missing item ' + str(missing[0]) + ')' if missing else ' (an item not in the log)'}", C)
    referenced_ballots: set[str] = set()
    referenced_records: set[str] = set()
    round_ids: set[int] = set()
    item_rules: dict[int, rules.Rule] = {}
    for ci in citems:
        where = f"counts.json item {ci.get('key')!r}"
        if set(ci) != layout.ITEM_FIELDS or not isinstance(ci["rounds"], list) or not isinstance(ci["rule"], dict):
            fail(f"{where} does not have exactly the fields {', '.join(sorted(layout.ITEM_FIELDS))}", C)
        ev = x.item_created[ci["id"]]
        if not isinstance(ci["body"], dict) or ci["body"].get("id") != scope["body_id"]:
            fail(f"{where} is of another body than the bundle's ({scope['body_id']})", C)
        for f in ("key", "kind", "title", "secret", "channel", "places", "rule"):
            if ci[f] != ev.get(f):
                fail(f"{where}: {f} is {ci[f]!r} but the event log created the item with {ev.get(f)!r}", C)
        if not isinstance(ci["session"], dict) or not isinstance(ci["body"], dict) \
                or ci["session"].get("id") != ev.get("session_id") \
                or x.sittings.get(ci["session"].get("id"), {}).get("body_id") != ci["body"].get("id"):
            fail(f"{where}: session or body differs from the event log", C)
        _check_election(ci, ev, where)
        try:
            item_rules[ci["id"]] = rules.Rule(ci["rule"].get("base"), ci["rule"].get("majority"))
        except rules.RuleError as exc:
            fail(f"{where}: {exc}", C)
        numbers = [r.get("number") if isinstance(r, dict) else None for r in ci["rounds"]]
        if numbers != list(range(1, len(numbers) + 1)):
            fail(f"{where}: rounds must run 1, 2, … in order: a round was moved, removed or added", C)
        for r in ci["rounds"]:
            _check_round(ci, r, f"{where} round {r['number']}", x, round_ids, referenced_ballots)
        if ci["record_file"] is not None:
            if not isinstance(ci["record_file"], str) or not ci["record_file"].startswith("records/") \
                    or ci["record_file"] in referenced_records:
                fail(f"{where}: record_file is not a file under records/", C)
            referenced_records.add(ci["record_file"])
    for rid in x.accepted:
        if rid not in round_ids and x.scope_sitting is None:
            fail(f"the event log accepts ballots for round id {rid}, which counts.json does not list", C)
    for extra in sorted(files_under(b, layout.BALLOTS_DIR) - referenced_ballots):
        fail(f"{extra} belongs to no round in counts.json", extra)
    receipts = {r["receipts_file"] for ci in citems for r in ci["rounds"]}
    for extra in sorted(files_under(b, layout.RECEIPTS_DIR) - receipts):
        fail(f"{extra} belongs to no round in counts.json", extra)
    for extra in sorted(files_under(b, layout.RECORDS_DIR) - referenced_records):
        fail(f"{extra} belongs to no item in counts.json", extra)
    return citems, item_rules


def _check_election(ci: dict, ev: dict, where: str) -> None:
    """An election's facts (office, 补选, names, who may be written in) as the log created it;
    every other kind has none."""
    e = ci["election"]
    if ci["kind"] != ItemKind.ELECTION:
        if e is not None or any(r.get("stage") is not None for r in ci["rounds"] if isinstance(r, dict)):
            fail(f"{where}: only an election has election facts and round stages", C)
        return
    if not isinstance(e, dict) or set(e) != {"office", "by_election", "titles", "eligible"} \
            or (e["office"], e["by_election"]) != (ev.get("office"), ev.get("by_election")) \
            or not isinstance(e["titles"], dict) or not all(isinstance(v, str) for v in e["titles"].values()) \
            or not (e["eligible"] is None or (isinstance(e["eligible"], list)
                                              and all(isinstance(n, str) for n in e["eligible"]))):
        fail(f"{where}: the election's office, 补选, names or eligible persons are damaged or differ from the "
             f"event log", C)
    for r in ci["rounds"]:
        if not isinstance(r, dict) or r.get("stage") not in values(ElectionStage):
            fail(f"{where}: an election round is first, revote, another or preliminary", C)


def _check_round(ci: dict, r: dict, rw: str, x: EventIndex, round_ids: set[int],
                 referenced_ballots: set[str]) -> None:
    """One round of counts.json against the log's opening, close, refusals and tally sheet."""
    fields = layout.ROUND_FIELDS | ({"by_channel"} if ci["channel"] == Channel.HYBRID else set())
    if set(r) != fields or not isinstance(r["refused"], dict):
        fail(f"{rw} does not have exactly the fields {', '.join(sorted(fields))}", C)
    if not is_int(r["round_id"]) or r["round_id"] in round_ids:
        fail(f"{rw}: round_id is missing or repeated", C)
    round_ids.add(r["round_id"])
    k = (ci["id"], r["number"])
    op = x.opened.get(k)
    if op is not None:
        for f in ("members", "present", "candidates", "places", "stage"):
            if r[f] != op.get(f):
                fail(f"{rw}: {f} is {r[f]!r} but the vote was opened with {op.get(f)!r}", C)
        if r["quorum_met"] is not True:
            fail(f"{rw}: the vote was opened, so quorum was met", C)
    elif r["status"] not in (RoundStatus.PENDING,) and r["quorum_met"] is not False:
        fail(f"{rw}: no vote_opened event, yet the round is {r['status']} with quorum met", C)
    if ci["channel"] in BLIND_CHANNELS and op is not None:  # a blind-signed round (checks_ballots.py)
        if r["round_ref"] != f"r{r['round_id']}" or r["round_key_file"] != layout.round_key_file(r["round_ref"]) \
                or not is_int(r["replacements"]) or r["replacements"] < 0:
            fail(f"{rw}: a terminal vote names its round (round_ref r<round id>), its key file and its "
                 f"replacements", C)
    elif (r["round_ref"], r["round_key_file"], r["replacements"]) != (None, None, None):
        fail(f"{rw}: only an opened terminal vote has a round key", C)
    if r["status"] == RoundStatus.PENDING and (op is not None or r["ballots_file"] is not None):
        fail(f"{rw}: a pending round has no vote", C)
    cl = x.closed.get(k)
    if cl is not None:
        cd = cl[1]
        if ci["channel"] != Channel.TALLY_SHEET and (r["issued"] != cd.get("issued")
                                               or r["returned"] != cd.get("returned")):
            fail(f"{rw}: issued/returned {r['issued']}/{r['returned']} differ from the figures "
                 f"frozen when the vote closed ({cd.get('issued')}/{cd.get('returned')})", C)
        if ci["channel"] == Channel.TERMINAL and r["round_ref"] is not None and (
                cd.get("blind_signatures") != r["issued"] or not is_int(r["issued"]) or r["returned"] > r["issued"]
                or cd.get("replacements") != r["replacements"]):
            fail(f"{rw}: blind signatures issued {cd.get('blind_signatures')!r} must equal I ({r['issued']!r}) "
                 f"and be at least R ({r['returned']!r}), with the replacements recorded at the close", C)
        if ci["channel"] == Channel.HYBRID:
            check_channel_split(rw, r, cd)
        if set(r["refused"]) != set(cd.get("refused") or {}):
            fail(f"{rw}: the refusal reasons differ from those recorded at the close", C)
    got = Counter(reason for _, reason in x.refusals.get(r["round_id"], []))
    for reason in set(got) | set(r["refused"]):
        if r["refused"].get(reason, 0) != got.get(reason, 0):
            fail(f"{rw}: refused ({reason}) is {r['refused'].get(reason, 0)} but the event log "
                 f"holds {got.get(reason, 0)} such refusals", C)
    if ci["channel"] == Channel.TALLY_SHEET:
        if r["ballots_file"] is not None:
            fail(f"{rw}: a tally-sheet round has no ballots file", C)
        if r["sheet"] is not None and r["sheet"] != x.sheets.get(k, {}).get("sheet"):
            fail(f"{rw}: the tally sheet differs from the one entered in the event log", C)
        if r["sheet"] is not None:
            _check_tellers(rw, r, x.sheets.get(k, {}), x.sheets_confirmed.get(k), x)
    elif r["sheet"] is not None:
        fail(f"{rw}: a round voted by {ci['channel']} has no tally sheet", C)
    elif r["status"] != RoundStatus.PENDING:
        expect = r["ballots_file"]
        if not isinstance(expect, str) or not expect.startswith("ballots/") or expect in referenced_ballots:
            fail(f"{rw}: ballots_file is missing or shared with another round", C)
        referenced_ballots.add(expect)


def _check_tellers(rw: str, r: dict, entered: dict, confirmed: dict | None, x: EventIndex) -> None:
    """A tally sheet was entered by one teller's counting-station credential and confirmed by
    a different credential held by the other role (counter 计票人 / scrutineer 监票人), each
    named as registered; and it issues no more ballots than members were present."""
    if confirmed is None:
        fail(f"{rw}: the tally sheet has no tally_sheet_confirmed event in the log", C)
    roles = []
    for what, d in (("entered", entered), ("confirmed", confirmed)):
        reg = x.terminals.get(d.get("terminal_id")) if is_int(d.get("terminal_id")) else None
        if (reg is None or reg.get("kind") != TerminalKind.COUNTING_STATION
                or reg.get("teller_role") not in values(TellerRole)):
            fail(f"{rw}: the tally sheet was {what} without a registered teller's counting-station credential", C)
        if d.get("teller") != reg.get("holder") or d.get("teller_role") != reg.get("teller_role"):
            fail(f"{rw}: the teller who {what} the tally sheet is not the holder registered with the credential", C)
        roles.append(reg["teller_role"])
    if entered.get("terminal_id") == confirmed.get("terminal_id"):
        fail(f"{rw}: the tally sheet was entered and confirmed with the same credential", C)
    if roles[0] == roles[1]:
        fail(f"{rw}: the tally sheet was entered and confirmed by two tellers of the same role ({roles[0]})", C)
    if not is_int(r["sheet"].get("issued")) or not is_int(r["present"]) or r["sheet"]["issued"] > r["present"]:
        fail(f"{rw}: the tally sheet issues {r['sheet'].get('issued')} ballots to {r['present']} members present", C)


def check_channel_split(rw: str, r: dict, closed: dict) -> None:
    """A hybrid round: I = blind signatures + paper ballots printed and R = tablet + paper
    ballots, each pair as the close froze it, adding up to counts.json's I and R, and on
    neither channel more ballots returned than issued: each signature and each paper
    allowance makes one ballot, so more on one side is a ballot let in by the other channel. (checks_ballots counts the file's lines
    against `returned`: the lines do not say which came on paper.)"""
    split = r.get("by_channel")
    ok = isinstance(split, dict) and set(split) == {"issued", "returned"} and all(
        isinstance(split[k], dict) and set(split[k]) == {Channel.TERMINAL, Channel.PAPER}
        and all(is_int(v) and v >= 0 for v in split[k].values()) for k in split)
    if not ok:
        fail(f"{rw}: a hybrid round gives by_channel {{issued, returned}} each as {{terminal, paper}} counts", C)
    i, ret = split["issued"], split["returned"]
    if i["terminal"] + i["paper"] != r["issued"] or ret["terminal"] + ret["paper"] != r["returned"]:
        fail(f"{rw}: by channel, {i['terminal']} + {i['paper']} issued and {ret['terminal']} + {ret['paper']} "
             f"returned do not add up to I = {r['issued']} and R = {r['returned']}", C)
    if (i["terminal"], i["paper"]) != (closed.get("blind_signatures"), closed.get("paper_handed_out")) \
            or ret != closed.get("returned_by_channel") or closed.get("replacements") != r["replacements"]:
        fail(f"{rw}: the split by channel differs from the one frozen when the vote closed", C)
    if ret["terminal"] > i["terminal"]:
        fail(f"{rw}: {ret['terminal']} tablet ballots returned but only {i['terminal']} blind signatures issued", C)
    if ret["paper"] > i["paper"]:
        fail(f"{rw}: {ret['paper']} paper ballots returned but only {i['paper']} printed: tablet ballots were "
             f"counted as paper", C)
