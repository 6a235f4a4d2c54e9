"""Checks 3 to 5: the event log is one unbroken hash chain, its signed checkpoints sit on it,
and its events keep the log's own rules (every close checkpointed, a closed sitting closed).
Check 5 also indexes the events that the later checks compare the other files with."""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ballot_service.bundle import layout
from ballot_service.bundle.checks_files import Keys, signature_ok
from ballot_service.bundle.encoding import DECODE, ENCODE, QUOTE
from ballot_service.bundle.errors import fail
from ballot_service.bundle.readers import read_checkpoints, read_lines
from ballot_service.crypto import keys as keys_mod
from ballot_service.domain import audit
from ballot_service.numbers import is_int
from ballot_service.vocab import ATTENDANCE_PREFIX, BLIND_CHANNELS, AuditKind


@dataclass
class Chain:
    hashes: list[str]
    kinds: list[str]
    datas: list[dict]  # each event's data parsed; {} where it is not an object

    def hash_at(self, seq: int) -> str | None:
        if seq == 0:
            return audit.GENESIS
        return self.hashes[seq - 1] if 1 <= seq <= len(self.hashes) else None


def _event_text(seq: int, at_json: str, kind_json: str, data_json: str) -> str:
    """The text audit.event_hash hashes after prev_hash, from already-quoted parts:
    canonical_json({"seq", "at", "kind", "data"})."""
    return f'{{"at":{at_json},"data":{data_json},"kind":{kind_json},"seq":{seq}}}'


def check_event_chain(bundle: Path) -> Chain:
    """3. events.jsonl line by line: canonical form, fields, seq 1, 2, 3 …, the link to the
    event before, the hash."""
    rel = layout.EVENTS
    lines = read_lines(bundle, rel)
    hashes: list[str] = []
    kinds: list[str] = []
    datas: list[dict] = []
    prev = audit.GENESIS
    sha256, q = hashlib.sha256, QUOTE
    for n, line in enumerate(lines, 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        where = f"{rel}:{n}"
        try:
            ev = DECODE(text) if text is not None else None
        except ValueError:
            ev = None
        if not isinstance(ev, dict):
            fail(f"{rel} line {n} is not a canonical JSON object: the line was damaged or edited", where)
        if len(ev) != len(layout.EVENT_FIELDS) or ev.keys() != set(layout.EVENT_FIELDS):
            fail(f"event on line {n} does not have exactly the fields {', '.join(layout.EVENT_FIELDS)}", where)
        at, data, h, kind, ph, seq = (ev[f] for f in layout.EVENT_FIELDS)
        if not isinstance(data, str) or not isinstance(kind, str) or not isinstance(h, str) \
                or not isinstance(ph, str) or not (at is None or isinstance(at, str)):
            fail(f"event {n} has a field of the wrong type", where)
        at_json, data_json, kind_json = "null" if at is None else q(at), q(data), q(kind)
        if f'{{"at":{at_json},"data":{data_json},"hash":{q(h)},"kind":{kind_json},"prev_hash":{q(ph)},' \
           f'"seq":{ENCODE(seq)}}}' != text:
            fail(f"{rel} line {n} is not a canonical JSON object: the line was damaged or edited", where)
        if not is_int(seq) or seq != n:
            fail(f"event on line {n} has seq {seq!r}; the chain must run 1, 2, 3, … without gaps: "
                 f"an event was removed, inserted or moved", where)
        if ph != prev:
            fail(f"event {n} does not link to the event before it (prev_hash differs): "
                 f"an event was removed, inserted or moved", where)
        if sha256((prev + _event_text(n, at_json, kind_json, data_json)).encode("utf-8")).hexdigest() != h:
            fail(f"event {n}'s hash does not match its contents: the event was changed", where)
        try:
            d = json.loads(data)
        except json.JSONDecodeError:
            fail(f"event {n}'s data is not JSON", where)
        hashes.append(h)
        kinds.append(kind)
        datas.append(d if isinstance(d, dict) else {})
        prev = h
    return Chain(hashes, kinds, datas)


def check_checkpoints(b: Path, keys: Keys, chain: Chain) -> list[dict]:
    """4. Every checkpoint is well formed, in order, signed by a key in keys/, and signs the
    chain head that events.jsonl has at its seq."""
    cps = read_checkpoints(b)
    last = None
    for n, cp in enumerate(cps, 1):
        where = f"checkpoints.json[{n}]"
        if not isinstance(cp, dict) or set(cp) != layout.CHECKPOINT_FIELDS or not is_int(cp["seq"]) \
                or not isinstance(cp["reason"], str):
            fail(f"checkpoint {n} does not have exactly the fields {', '.join(sorted(layout.CHECKPOINT_FIELDS))}",
                 where)
        order = (cp["seq"], cp["reason"])
        if last is not None and order <= last:
            fail(f"checkpoint {n} is out of order or repeated: checkpoints run by seq", where)
        last = order
        pub = keys.by_fp.get(cp["key_fingerprint"])
        if pub is None:
            fail(f"checkpoint {n} names key {cp['key_fingerprint']!r}, which is not in keys/", where)
        if not signature_ok(pub, cp["signature"],
                            audit.checkpoint_message(cp["seq"], cp["head_hash"], cp["reason"])):
            fail(f"checkpoint {n}'s signature does not verify: the checkpoint was changed or forged", where)
        if chain.hash_at(cp["seq"]) != cp["head_hash"]:
            fail(f"checkpoint {n} signs chain head {cp['head_hash'][:12]}… at seq {cp['seq']}, "
                 f"but events.jsonl has another hash there: the event log was cut or rewritten", where)
    return cps


@dataclass
class EventIndex:
    """The events the later checks compare counts.json, the ballots and the records with."""

    item_created: dict[int, dict] = field(default_factory=dict)
    sittings: dict[int, dict] = field(default_factory=dict)
    opened: dict[tuple, dict] = field(default_factory=dict)
    closed: dict[tuple, tuple[int, dict]] = field(default_factory=dict)
    tallied: dict[tuple, tuple[int, dict]] = field(default_factory=dict)
    sheets: dict[tuple, dict] = field(default_factory=dict)
    sheets_confirmed: dict[tuple, dict] = field(default_factory=dict)
    terminals: dict[int, dict] = field(default_factory=dict)  # terminal id -> its terminal_registered data
    # round id -> ballots accepted, the sum of its casts_accepted batch counts (no event per cast)
    accepted: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    closed_rounds: dict[int, int] = field(default_factory=dict)  # round id -> seq of its vote_closed
    scope_sitting: int | None = None  # set by check 6: the one sitting a sitting's bundle lists
    items_in_scope: set = field(default_factory=set)  # set by check 6: the items counts.json must list
    refusals: dict[int, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    rescans: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))  # round id -> seqs
    record_events: dict[str, tuple[int, dict]] = field(default_factory=dict)
    round_keys: dict[int, tuple[int, dict]] = field(default_factory=dict)  # round id -> its key's announcement
    sitting_closed: dict[int, int] = field(default_factory=dict)  # sitting id -> seq of its session_closed event
    pages: list[dict] = field(default_factory=list)  # page_scanned data (scanned_pages.py)


def check_event_log(chain: Chain, keys: Keys, cps: list[dict]) -> EventIndex:
    """5. The log keeps its own rules: a serial is accepted once; every vote close and sitting
    close has a checkpoint at its seq signed by the sitting's body's key; a sitting is closed
    once, after it was created, and then takes no check-in, leave, screen, item or vote."""
    x = EventIndex()
    cp_by_reason = {cp["reason"]: cp for cp in cps}

    def body_key_of_sitting(sid) -> str | None:
        body_id = (x.sittings.get(sid) or {}).get("body_id")
        return keys.fps.get(keys_mod.body_key_name(body_id)) if is_int(body_id) else None

    def require_checkpoint(seq: int, reason: str, what: str, sid) -> None:
        cp = cp_by_reason.get(reason)
        if cp is None or cp["seq"] != seq:
            fail(f"the {what} at event {seq} has no signed checkpoint ({reason}) in checkpoints.json: "
                 f"a checkpoint was removed", "checkpoints.json")
        if cp["key_fingerprint"] != body_key_of_sitting(sid):
            fail(f"the checkpoint of the {what} at event {seq} is not signed by the key of the session's body",
                 "checkpoints.json")

    def still_open(seq: int, sid, what: str) -> None:
        if sid in x.sitting_closed:
            fail(f"event {seq} ({what}) changes session {sid} after it was closed at event "
                 f"{x.sitting_closed[sid]}: a closed session accepts no check-in, item or vote",
                 f"events.jsonl:{seq}")

    def sitting_of_item(d: dict):
        return (x.item_created.get(d.get("item_id")) or {}).get("session_id")

    for seq, (kind, d) in enumerate(zip(chain.kinds, chain.datas), 1):
        if kind == AuditKind.CASTS_ACCEPTED:
            if set(d) != {"round_id", "count"} or not is_int(d["count"]) or d["count"] < 1:
                fail(f"event {seq} (casts_accepted) must hold exactly a round_id and a count of at least 1: "
                     f"the chain holds no serial, marks or time of any single cast", f"events.jsonl:{seq}")
            seq_closed = x.closed_rounds.get(d["round_id"])
            if seq_closed is not None:
                fail(f"event {seq} accepts ballots for round {d['round_id']} after its close at event {seq_closed}",
                     f"events.jsonl:{seq}")
            x.accepted[d["round_id"]] += d["count"]
        elif kind == AuditKind.CAST_ACCEPTED:
            fail(f"event {seq} is a per-cast cast_accepted event: the chain must not give the order of arrival",
                 f"events.jsonl:{seq}")
        elif kind == AuditKind.SITTING_CREATED:
            x.sittings[d.get("session_id")] = d
        elif kind == AuditKind.ITEM_CREATED:
            still_open(seq, d.get("session_id"), "a new item")
            x.item_created[d.get("item_id")] = d
        elif kind == AuditKind.ITEM_EDITED:  # before its vote opened: the item as it was then voted
            still_open(seq, d.get("session_id"), "a change of an item")
            x.item_created[d.get("item_id")] = d
        elif kind == AuditKind.ITEM_DELETED:
            still_open(seq, d.get("session_id"), "deleting an item")
            x.item_created.pop(d.get("item_id"), None)
        elif kind.startswith(ATTENDANCE_PREFIX):
            still_open(seq, d.get("session_id"), "a check-in or leave")
        elif kind == AuditKind.SCREEN_SET:
            still_open(seq, d.get("session_id"), "a choice of what the presiding screen shows")
        elif kind in (AuditKind.VOTE_OPENED, AuditKind.VOTE_OPEN_REFUSED):
            still_open(seq, sitting_of_item(d), "a vote opening")
            if kind == AuditKind.VOTE_OPENED:
                x.opened[(d.get("item_id"), d.get("round"))] = d
                if d.get("channel") in BLIND_CHANNELS and not any(
                        a.get("item_id") == d.get("item_id") and a.get("round") == d.get("round")
                        for _, a in x.round_keys.values()):
                    fail(f"event {seq} opens a terminal vote whose round key was not announced before it",
                         f"events.jsonl:{seq}")
        elif kind == AuditKind.PAGE_SCANNED:
            x.pages.append(d)
        elif kind == AuditKind.ROUND_KEY_ANNOUNCED:
            if d.get("round_id") in x.round_keys:
                fail(f"event {seq} announces a second key for round {d.get('round_id')}", f"events.jsonl:{seq}")
            x.round_keys[d.get("round_id")] = (seq, d)
        elif kind == AuditKind.VOTE_CLOSED:
            x.closed[(d.get("item_id"), d.get("round"))] = (seq, d)
            if is_int(d.get("round_id")):
                x.closed_rounds[d["round_id"]] = seq
            require_checkpoint(seq, f"vote_closed:{d.get('item_id')}:{d.get('round')}", "vote close",
                               sitting_of_item(d))
        elif kind == AuditKind.SITTING_CLOSED:
            sid = d.get("session_id")
            if sid not in x.sittings:
                fail(f"event {seq} closes session {sid!r}, which the event log never created", f"events.jsonl:{seq}")
            if sid in x.sitting_closed:
                fail(f"event {seq} closes session {sid} a second time (first at event {x.sitting_closed[sid]})",
                     f"events.jsonl:{seq}")
            require_checkpoint(seq, f"session_closed:{sid}", "session close", sid)
            x.sitting_closed[sid] = seq
        elif kind == AuditKind.TALLIED:
            x.tallied[(d.get("item_id"), d.get("round"))] = (seq, d)
        elif kind == AuditKind.TALLY_SHEET_ENTERED:
            x.sheets[(d.get("item_id"), d.get("round"))] = d
        elif kind == AuditKind.TALLY_SHEET_CONFIRMED:
            x.sheets_confirmed[(d.get("item_id"), d.get("round"))] = d
        elif kind == AuditKind.TERMINAL_REGISTERED:
            x.terminals[d.get("terminal_id")] = d
        elif kind == AuditKind.CAST_REFUSED and d.get("round_id") is not None:
            x.refusals[d["round_id"]].append((seq, d.get("reason")))
        elif kind == AuditKind.PAPER_RESCANNED and d.get("round_id") is not None:
            x.rescans[d["round_id"]].append(seq)
        elif kind == AuditKind.RECORD_ISSUED:
            x.record_events[d.get("record_id")] = (seq, d)
    return x
