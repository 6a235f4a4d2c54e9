"""Checks 8 and 9: each signed record verifies, names an audit head on the chain and matches
its record_issued event; and recounting every tallied round from the ballots (or the tally
sheet) gives the results the log tallied and the records signed."""
from __future__ import annotations

import json
from pathlib import Path

from ballot_service import rules
from ballot_service.bundle.checks_chain import Chain, EventIndex
from ballot_service.bundle.checks_files import Keys, signature_ok
from ballot_service.bundle.errors import fail
from ballot_service.bundle.readers import read_record
from ballot_service.crypto import keys as keys_mod
from ballot_service.formats.canonical import sha256_hex
from ballot_service.numbers import is_int
from ballot_service.rules import tally
from ballot_service.vocab import Channel, ItemKind, ItemStatus, RoundStatus


def check_records(b: Path, citems: list[dict], keys: Keys, chain: Chain, x: EventIndex) -> dict[int, dict]:
    """8. Returns the signed content of every record, by item id."""
    signed_records: dict[int, dict] = {}
    for ci in citems:
        rel = ci["record_file"]
        if rel is None:
            continue
        rec = read_record(b, rel)
        body_name = keys_mod.body_key_name(ci["body"]["id"])
        pub = keys.by_name.get(body_name)
        if pub is None or keys.fps[body_name] != rec["key_fingerprint"]:
            fail(f"{rel} is signed by key {rec['key_fingerprint']!r}, not by the body's key in keys/", rel)
        signed = rec["signed"].encode("utf-8")
        if not signature_ok(pub, rec["signature"], signed):
            fail(f"{rel}: the record's signature does not verify: the record was changed or forged", rel)
        content = json.loads(signed)
        if content.get("key_fingerprint") != rec["key_fingerprint"]:
            fail(f"{rel}: the signed record names another key fingerprint", rel)
        a = content.get("audit") or {}
        if not is_int(a.get("seq")) or chain.hash_at(a["seq"]) != a.get("head"):
            fail(f"{rel}: the record's audit head (seq {a.get('seq')}) is not in events.jsonl at that seq: "
                 f"the event log was cut or rewritten", rel)
        ev = x.record_events.get(rec["record_id"])
        if ev is None or ev[1].get("signature") != rec["signature"] or ev[1].get("item_id") != ci["id"] \
                or ev[1].get("record_sha256") != sha256_hex(signed):
            fail(f"{rel}: no matching record_issued event in the log", rel)
        it = content.get("item") or {}
        if (it.get("id"), it.get("key"), it.get("kind")) != (ci["id"], ci["key"], ci["kind"]) \
                or (content.get("body") or {}).get("id") != ci["body"]["id"] \
                or (content.get("session") or {}).get("id") != ci["session"]["id"]:
            fail(f"{rel} is the record of another item, session or body", rel)
        check_not_issued(rel, content)
        signed_records[ci["id"]] = content
    for rid, (seq, d) in x.record_events.items():
        if d.get("item_id") not in signed_records and d.get("item_id") in x.items_in_scope:
            fail(f"the event log issued record {rid} (event {seq}) but the bundle does not hold it: "
                 f"a record was removed", "records/")
    return signed_records


def check_not_issued(rel: str, content: dict) -> None:
    """A tablet round's `not_issued` (present members who took no ballot) is P − I of its result.
    Records signed before the field existed have none; a record that has it must be right."""
    for rnd in content.get("rounds") or []:
        if "not_issued" not in rnd:
            continue
        res = rnd.get("result") or {}
        want = rules.not_issued((content.get("item") or {}).get("channel"), res.get("present"), res.get("issued"))
        if rnd["not_issued"] != want or (want is not None and not is_int(rnd["not_issued"])):
            fail(f"{rel}: round {rnd.get('number')!r} says {rnd['not_issued']!r} present members took no "
                 f"ballot, but P − I of its result is {want!r}", rel)


def check_recount(citems: list[dict], item_rules: dict[int, rules.Rule], x: EventIndex,
                  marks_by_round: dict[int, list[dict]], signed_records: dict[int, dict]) -> int:
    """9. Returned ≤ issued unless the record declares the vote void, then a recount of every
    round; returns how many rounds were recounted."""
    rounds_checked = 0
    for ci in citems:
        content = signed_records.get(ci["id"])
        rec_rounds = {}
        if content is not None:
            rec_rounds = {r.get("number"): r.get("result") for r in content.get("rounds") or []}
        results = []
        for r in ci["rounds"]:
            tl = x.tallied.get((ci["id"], r["number"]))
            if r["status"] != RoundStatus.TALLIED:
                if tl is not None or r["number"] in rec_rounds:
                    fail(f"{ci['key']} round {r['number']} is {r['status']} in counts.json but was tallied",
                         "counts.json")
                continue
            if tl is None:
                fail(f"{ci['key']} round {r['number']} is marked tallied but the event log has no tally",
                     "counts.json")
            result = _recount(ci, r, item_rules[ci["id"]], tl[0], x, marks_by_round, rec_rounds)
            if result != tl[1].get("result"):
                fail(f"{ci['key']} round {r['number']}: recounting the ballots gives another result than the "
                     f"one tallied in the event log", "counts.json")
            if content is not None:
                if r["number"] not in rec_rounds:
                    fail(f"{ci['record_file']} lacks round {r['number']}", ci["record_file"])
                if rec_rounds[r["number"]] != result:
                    fail(f"{ci['key']} round {r['number']}: recounting the ballots gives another result than "
                         f"the signed record", ci["record_file"])
                split = next((rr.get("by_channel") for rr in content.get("rounds") or []
                              if rr.get("number") == r["number"]), None)
                if ci["channel"] == Channel.HYBRID and r["quorum_met"] and split != r.get("by_channel"):
                    fail(f"{ci['key']} round {r['number']}: the signed record's split by channel differs from "
                         f"counts.json", ci["record_file"])
            results.append(result)
            rounds_checked += 1
        if content is not None:
            if set(rec_rounds) != {r["number"] for r in ci["rounds"] if r["status"] == RoundStatus.TALLIED}:
                fail(f"{ci['record_file']} covers other rounds than the bundle", ci["record_file"])
            if not results or tally.item_result(ci["key"], ci["kind"], results) != content.get("result"):
                fail(f"{ci['key']}: the signed record's result differs from the recount", ci["record_file"])
    return rounds_checked


def _election(ci: dict, r: dict) -> dict | None:
    """What an election round's count needs besides its ballots (election_items.bundle_facts)."""
    e = ci["election"]
    if e is None:
        return None
    return {"stage": r["stage"], "listed": [e["titles"][k] for k in r["candidates"] if k in e["titles"]],
            "eligible": e["eligible"]}


def _recount(ci: dict, r: dict, rule: rules.Rule, tally_seq: int, x: EventIndex,
             marks_by_round: dict[int, list[dict]], rec_rounds: dict) -> dict:
    """One round's result from its tally sheet or ballots, with the refusals made before it
    was tallied."""
    refused_then = sum(1 for seq, _ in x.refusals.get(r["round_id"], []) if seq < tally_seq)
    common = dict(item_kind=ci["kind"], candidate_keys=list(r["candidates"]), places=r["places"],
                  rule=rule, members=r["members"], present=r["present"],
                  quorum_met=bool(r["quorum_met"]), refused=refused_then,
                  rescanned=sum(1 for seq in x.rescans.get(r["round_id"], []) if seq < tally_seq),
                  scale=_scale(ci) if ci["kind"] == ItemKind.EVALUATION else None, election=_election(ci, r))
    try:
        if ci["channel"] == Channel.TALLY_SHEET:
            if r["sheet"] is None:
                fail(f"{ci['key']} round {r['number']}: the tally sheet is missing", "counts.json")
            return tally.round_result(issued=r["sheet"]["issued"], sheet=r["sheet"], **common)
        if is_int(r["issued"]) and r["returned"] > r["issued"] \
                and (rec_rounds.get(r["number"]) or {}).get("status") != ItemStatus.VOID:
            fail(f"{ci['key']} round {r['number']}: {r['returned']} ballots returned but only "
                 f"{r['issued']} issued, and the record does not declare the vote void", "counts.json")
        return tally.round_result(issued=r["issued"] or 0, ballots=marks_by_round[r["round_id"]], **common)
    except (rules.RuleError, KeyError, TypeError, ValueError) as exc:
        fail(f"{ci['key']} round {r['number']}: the counts cannot be tallied ({exc})", "counts.json")


def _scale(ci: dict) -> dict:
    """An evaluation's options and grading, as the item was created with them (counts.json `rule`,
    checked against the item_created event): the recount grades and rates with these."""
    scale = {k: ci["rule"].get(k) for k in ("options", "grading")}
    if not isinstance(scale["options"], list) or not isinstance(scale["grading"], dict):
        fail(f"{ci['key']}: an evaluation's rule names its options and grading", "counts.json")
    return scale
