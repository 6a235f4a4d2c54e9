"""Issue #15, finding 2, as an auditor holding the bundle: the event log gave the order of
arrival (one cast_accepted per cast, in order) and a receipt was recomputable from the
serial and the marks (sha256("receipt|serial|submission")), so any receipt mapped to its
marks. Now the chain keeps a count per intake batch and the close commits to the sorted set;
receipts are the tablet's H(r), listed apart from the ballots."""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from bundle_support import export_app_bundle, rewrite_manifest
from helpers_live import blind_ballot, setup_sitting

from ballot_service.bundle.errors import BundleInvalid
from ballot_service.bundle.verify import verify_bundle
from ballot_service.crypto import tablet
from ballot_service.formats.canonical import canonical_json

MARKS = [{"motion": "for"}, {"motion": "against"}, {"motion": "abstain"}, {"motion": "for"},
         {"motion": "against"}, {"motion": "for"}]


@pytest.fixture
def cast_in_order(app, api, tmp_path):
    """Six secret casts in a known order (the attacker's hall camera), closed, and the bundle."""
    s = setup_sitting(api, members=7, secret=True)
    order, receipts = [], []
    for no, marks in zip(s.members, MARKS):
        ballot = blind_ballot(api, s.creds[no])
        r, h = tablet.new_receipt()
        _, answer = api.call("POST", "/api/terminal/cast", {**ballot, "marks": marks, "retry_id": tablet.new_retry_id(),
                                                            "receipt_hash": h}, credential=s.creds[no])
        order.append(ballot["serial"])
        receipts.append((r, h, answer["receipt"]))
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    b = export_app_bundle(app, tmp_path / "bundle")
    return s, order, receipts, b


def _events(b):
    return [json.loads(line) for line in (b / "events.jsonl").read_text("utf-8").splitlines()]


def test_event_log_gives_no_arrival_order(cast_in_order):
    s, order, _, b = cast_in_order
    events = _events(b)
    text = (b / "events.jsonl").read_text("utf-8")
    assert not [serial for serial in order if serial in text]  # no serial in the chain at all
    assert "cast_accepted" not in {e["kind"] for e in events}
    batches = [json.loads(e["data"]) for e in events if e["kind"] == "casts_accepted"]
    assert all(set(d) == {"round_id", "count"} and e_at is None
               for d, e_at in zip(batches, [e["at"] for e in events if e["kind"] == "casts_accepted"]))
    assert sum(d["count"] for d in batches) == len(order)
    ballots = [json.loads(x) for x in next((b / "ballots").iterdir()).read_text("utf-8").splitlines()]
    assert [x["serial"] for x in ballots] == sorted(order)  # file order: by serial only
    closed = json.loads(next(e for e in events if e["kind"] == "vote_closed")["data"])
    assert len(closed["ballots_commitment"]) == 64 and len(closed["receipts_commitment"]) == 64
    assert verify_bundle(b)["ballots"] == len(order)


def test_receipt_maps_to_no_marks(cast_in_order):
    """The old attack: recompute every ballot's receipt from the bundle and look up a
    member's receipt. Now no ballot line yields any receipt, and the receipts the members
    got are the H(r) their tablets chose, listed sorted in a file of their own."""
    s, order, receipts, b = cast_in_order
    ballots = [json.loads(x) for x in next((b / "ballots").iterdir()).read_text("utf-8").splitlines()]
    codes = {code for _, _, code in receipts}
    round_ref = json.loads((b / "counts.json").read_text("utf-8"))["items"][0]["rounds"][0]["round_ref"]
    for line in ballots:
        obj = {k: line[k] for k in ("round_ref", "serial", "prefix", "signature") if k in line}
        digest = hashlib.sha256(canonical_json({"ballot": {"round_ref": round_ref, **obj},
                                                "marks": line["marks"]})).hexdigest()
        old = hashlib.sha256(f"receipt|{line['serial']}|{digest}".encode()).hexdigest()[:12].upper()
        assert not any(c.startswith(old) for c in codes)
        assert not any(c.lower() in json.dumps(line) for c in codes)
    for r, h, code in receipts:
        assert code == h[:16].upper() == tablet.receipt_hash_of(r)[:16].upper()
    listed = (b / "receipts").joinpath(next((b / "receipts").iterdir()).name).read_text().split()
    assert listed == sorted(h for _, h, _ in receipts)  # sorted, not in cast order


def test_changed_marks_break_the_commitment(cast_in_order, tmp_path):
    """Without per-cast digests in the chain, the close's signed commitment is what catches
    a ballot whose marks were changed after the vote."""
    _, _, _, b = cast_in_order
    c = tmp_path / "c"
    shutil.copytree(b, c)
    f = next((c / "ballots").iterdir())
    lines = f.read_text("utf-8").splitlines()
    first = json.loads(lines[0])
    first["marks"] = {"motion": "against" if first["marks"]["motion"] != "against" else "for"}
    lines[0] = json.dumps(first, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    f.write_text("\n".join(lines) + "\n", "utf-8")
    rewrite_manifest(c)
    with pytest.raises(BundleInvalid, match="committed to"):
        verify_bundle(c)


def test_a_receipt_removed_is_found(cast_in_order, tmp_path):
    _, _, _, b = cast_in_order
    c = tmp_path / "c"
    shutil.copytree(b, c)
    f = next((c / "receipts").iterdir())
    f.write_text("".join(x + "\n" for x in f.read_text().split()[1:]))
    rewrite_manifest(c)
    with pytest.raises(BundleInvalid, match="one receipt per ballot"):
        verify_bundle(c)


def test_a_retry_gets_the_same_receipt(app, api):
    s = setup_sitting(api, members=3, secret=True)
    no = s.members[0]
    ballot = blind_ballot(api, s.creds[no])
    _, h = tablet.new_receipt()
    body = {**ballot, "marks": {"motion": "for"}, "retry_id": tablet.new_retry_id(), "receipt_hash": h}
    _, first = api.call("POST", "/api/terminal/cast", body, credential=s.creds[no])
    _, again = api.call("POST", "/api/terminal/cast", body, credential=s.creds[no])
    assert first["receipt"] == again["receipt"] == h[:16].upper() and again["repeated"]
    _, bad = api.call("POST", "/api/terminal/cast", {**body, "receipt_hash": "XYZ"}, credential=s.creds[no],
                      expect=(400,))
    assert bad["errors"][0]["where"] == "receipt_hash"
