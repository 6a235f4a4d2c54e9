"""The audit bundle: a rehearsed session exports a bundle that verifies, and every change to
every file is detected, by the manifest and, with the manifest rewritten, by deeper checks."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from bundle_support import rewrite_manifest
from click.testing import CliRunner
from scenario_support import SCENARIOS

from ballot_service.bundle.checks_chain import check_event_chain
from ballot_service.bundle.encoding import json_line, pretty_json
from ballot_service.bundle.errors import BundleInvalid
from ballot_service.bundle.export import export_bundle
from ballot_service.bundle.verify import verify_bundle
from ballot_service.cli import main
from ballot_service.domain import audit
from ballot_service.errors import InvalidInput
from ballot_service.rehearsal import rehearse


@pytest.fixture(scope="module", params=["livelihood-basic", "tie-runoff"])
def bundle(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(request.param)
    rehearse(SCENARIOS / f"{request.param}.json", out)
    return out / "audit"


@pytest.fixture(scope="module")
def named_bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("appointment")
    rehearse(SCENARIOS / "appointment-committee.json", out)
    return out / "audit"


def copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(src, dst)
    return dst


def bundle_files(b: Path) -> list[str]:
    return sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())


# --- byte/line mutations usable on any file ----------------------------------------------

def flip_byte(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


def delete_line(data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    del lines[len(lines) // 2]
    return b"".join(lines)


def insert_line(data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    i = len(lines) // 2
    return b"".join(lines[:i] + [lines[i]] + lines[i:])


def reorder_lines(data: bytes) -> bytes | None:
    lines = data.splitlines(keepends=True)
    for i in range(len(lines) - 1, 0, -1):
        for j in range(i):
            if lines[i] != lines[j] and lines[i].endswith(b"\n") and lines[j].endswith(b"\n"):
                lines[i], lines[j] = lines[j], lines[i]
                return b"".join(lines)
    return None


MUTATIONS = {"flip": flip_byte, "delete": delete_line, "insert": insert_line, "reorder": reorder_lines}


def test_intact_bundle_verifies(bundle):
    s = verify_bundle(bundle)
    assert s["ok"] and s["ballots"] > 0 and s["records"] >= 1 and s["checkpoints"] >= 1
    fp = json.loads((bundle / "keys" / "fingerprints.json").read_text())["body-1"]
    assert verify_bundle(bundle, key=fp)["ok"]
    assert verify_bundle(bundle, key=str(bundle / "keys" / "body-1.pub.pem"))["ok"]


def test_layout(bundle):
    files = bundle_files(bundle)
    for f in ("events.jsonl", "checkpoints.json", "counts.json", "manifest.json", "README.md",
              "keys/body-1.pub.pem", "keys/fingerprints.json"):
        assert f in files
    assert any(f.startswith("ballots/") and f.endswith("-r1.jsonl") for f in files)
    assert any(f.startswith("records/") for f in files)
    readme = (bundle / "README.md").read_text("utf-8")
    assert "ballot-service audit verify" in readme and "openssl pkeyutl -verify" in readme and "核验" in readme


def test_secret_ballots_carry_no_identity_and_are_sorted(bundle):
    for f in (bundle / "ballots").glob("*.jsonl"):
        lines = [json.loads(x) for x in f.read_text().splitlines()]
        assert all(set(x) in ({"serial", "signature", "marks"}, {"serial", "signature", "prefix", "marks"}) for x in lines)
        serials = [x["serial"] for x in lines]
        assert serials == sorted(serials)


def test_named_ballots_carry_member(named_bundle):
    assert verify_bundle(named_bundle)["ok"]
    counts = json.loads((named_bundle / "counts.json").read_text())
    named = [i for i in counts["items"] if not i["secret"]]
    assert named
    lines = [json.loads(x) for x in (named_bundle / named[0]["rounds"][0]["ballots_file"]).read_text().splitlines()]
    assert lines and all(x["member_no"] for x in lines)


def mutated_copies(bundle: Path, rels, tmp_path: Path):
    """A copy of the bundle for each file of `rels` and each of MUTATIONS that changes it, with
    that change made."""
    for rel in rels:
        for name, mutate in MUTATIONS.items():
            original = (bundle / rel).read_bytes()
            changed = mutate(original)
            if changed is None or changed == original:
                continue
            b = copy(bundle, tmp_path / f"{rel.replace('/', '_')}-{name}")
            (b / rel).write_bytes(changed)
            yield b


def test_every_change_to_every_file_is_detected(bundle, tmp_path):
    tried = 0
    for b in mutated_copies(bundle, bundle_files(bundle), tmp_path):
        with pytest.raises(BundleInvalid):
            verify_bundle(b)
        tried += 1
    assert tried >= 4 * 5


def test_deleting_or_adding_a_file_is_detected(bundle, tmp_path):
    for rel in bundle_files(bundle):
        b = copy(bundle, tmp_path / f"del-{rel.replace('/', '_')}")
        (b / rel).unlink()
        with pytest.raises(BundleInvalid):
            verify_bundle(b)
    b = copy(bundle, tmp_path / "extra")
    (b / "ballots" / "extra-r1.jsonl").write_text("")
    with pytest.raises(BundleInvalid):
        verify_bundle(b)
    rewrite_manifest(b)
    with pytest.raises(BundleInvalid, match="belongs to no round"):
        verify_bundle(b)


# --- deeper checks: the attacker rewrites the manifest too ----------------------------------

def deep_files(b: Path) -> list[str]:
    return ["events.jsonl", "checkpoints.json", "counts.json"] + \
        [f for f in bundle_files(b) if f.startswith(("ballots/", "records/"))]


def assert_deep_detects(b: Path) -> str:
    rewrite_manifest(b)
    with pytest.raises(BundleInvalid) as exc:
        verify_bundle(b)
    assert "manifest.json" not in exc.value.message, exc.value.message
    return exc.value.message


def test_deep_checks_catch_line_changes_with_manifest_rewritten(bundle, tmp_path):
    for b in mutated_copies(bundle, deep_files(bundle), tmp_path):
        assert_deep_detects(b)


def edit_json(b: Path, rel: str, fn) -> None:
    data = json.loads((b / rel).read_text("utf-8"))
    out = fn(data)
    data = data if out is None or not isinstance(out, type(data)) else out
    (b / rel).write_text(pretty_json(data), "utf-8")


def edit_jsonl(b: Path, rel: str, fn) -> None:
    lines = [json.loads(x) for x in (b / rel).read_text("utf-8").splitlines()]
    out = fn(lines)
    lines = lines if out is None else out
    (b / rel).write_text("".join(json_line(x) for x in lines), "utf-8")


def first(b: Path, prefix: str) -> str:
    return next(f for f in bundle_files(b) if f.startswith(prefix))


def _round(d):
    return d["items"][0]["rounds"][0]


STRUCTURAL = {
    # events: the last event (the record's issue), a middle one, an edit of data
    "events: delete last": ("events.jsonl", "jsonl", lambda ls: ls[:-1]),
    "events: delete first": ("events.jsonl", "jsonl", lambda ls: ls[1:]),
    "events: swap two": ("events.jsonl", "jsonl", lambda ls: [ls[1], ls[0]] + ls[2:]),
    "events: edit data": ("events.jsonl", "jsonl",
                          lambda ls: [dict(ls[0], data=ls[0]["data"].replace("}", ',"x":1}'))] + ls[1:]),
    # ballots: change a mark (re-sorted, canonical), drop one, duplicate one, reorder
    "ballots: change a mark": ("ballots/", "jsonl", lambda ls: [dict(ls[0], marks={
        k: ("against" if v == "for" else "for") for k, v in ls[0]["marks"].items()})] + ls[1:]),
    "ballots: delete one": ("ballots/", "jsonl", lambda ls: ls[1:]),
    "ballots: duplicate one": ("ballots/", "jsonl", lambda ls: ls[:1] + ls),
    "ballots: reverse": ("ballots/", "jsonl", lambda ls: ls[::-1]),
    "ballots: forge serial": ("ballots/", "jsonl", lambda ls: [dict(ls[0], serial="0" * 32)] + ls[1:]),
    # checkpoints
    "checkpoints: delete": ("checkpoints.json", "json", lambda d: d[1:]),
    "checkpoints: duplicate": ("checkpoints.json", "json", lambda d: d[:1] + d),
    "checkpoints: reverse": ("checkpoints.json", "json", lambda d: d[::-1] if len(d) > 1 else d + d),
    "checkpoints: change seq": ("checkpoints.json", "json",
                                lambda d: [dict(d[0], seq=d[0]["seq"] - 1)] + d[1:]),
    # counts
    "counts: issued": ("counts.json", "json", lambda d: _round(d).update(issued=_round(d)["issued"] + 1)),
    "counts: present": ("counts.json", "json", lambda d: _round(d).update(present=_round(d)["present"] - 1)),
    "counts: refused": ("counts.json", "json", lambda d: _round(d)["refused"].update(late=1)),
    "counts: delete refused reason": ("counts.json", "json", lambda d: _round(d)["refused"].pop("late")),
    "counts: delete round": ("counts.json", "json", lambda d: d["items"][0]["rounds"].pop()),
    "counts: delete item": ("counts.json", "json", lambda d: d["items"].pop()),
    "counts: insert key": ("counts.json", "json", lambda d: _round(d).update(extra=1)),
    "counts: duplicate item": ("counts.json", "json", lambda d: d["items"].append(d["items"][0])),
    "counts: reorder candidates": ("counts.json", "json",
                                   lambda d: _round(d).update(candidates=_round(d)["candidates"][::-1])),
    "counts: rule": ("counts.json", "json", lambda d: d["items"][0]["rule"].update(majority="two_thirds")),
    "counts: places": ("counts.json", "json", lambda d: _round(d).update(places=(_round(d)["places"] or 1) + 1)),
    # records
    "records: delete field": ("records/", "json", lambda d: d.pop("key_fingerprint")),
    "records: insert field": ("records/", "json", lambda d: d.update(note="x")),
    "records: edit signed": ("records/", "json", lambda d: d.update(signed=d["signed"].replace('"for":', '"for":1', 1))),
    "records: swap signature": ("records/", "json", lambda d: d.update(signature=d["signature"][::-1])),
}


@pytest.mark.parametrize("case", sorted(STRUCTURAL))
def test_deep_checks_catch_entry_changes(bundle, tmp_path, case):
    target, kind, fn = STRUCTURAL[case]
    b = copy(bundle, tmp_path)
    rel = target if not target.endswith("/") else first(b, target)
    (edit_jsonl if kind == "jsonl" else edit_json)(b, rel, fn)
    assert_deep_detects(b)


def test_removing_a_record_file_is_caught_by_the_chain(bundle, tmp_path):
    b = copy(bundle, tmp_path)
    rel = first(b, "records/")
    (b / rel).unlink()
    edit_json(b, "counts.json", lambda d: [i.update(record_file=None) for i in d["items"] if i["record_file"] == rel])
    assert "record" in assert_deep_detects(b)


def test_ballot_moved_to_another_round_fails_binding(tmp_path, bundle):
    files = [f for f in bundle_files(bundle) if f.startswith("ballots/")]
    if len(files) < 2:
        pytest.skip("one round only")
    b = copy(bundle, tmp_path)
    moved = (b / files[1]).read_text().splitlines()[0]
    edit_jsonl(b, files[0], lambda ls: sorted(ls + [json.loads(moved)], key=lambda x: x["serial"]))
    edit_jsonl(b, files[1], lambda ls: ls[1:])
    assert_deep_detects(b)


def test_wrong_key_is_refused(bundle):
    with pytest.raises(BundleInvalid, match="not the key you gave"):
        verify_bundle(bundle, key="0000 0000 0000 0000")


def test_export_refuses_a_non_empty_folder(tmp_path, bundle):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput):
        export_bundle(None, None, tmp_path / "x")
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


def test_cli_verify_exit_codes(bundle, tmp_path):
    r = CliRunner().invoke(main, ["audit", "verify", str(bundle)])
    assert r.exit_code == 0, r.output
    assert "OK" in r.output
    b = copy(bundle, tmp_path)
    (b / "counts.json").write_text((b / "counts.json").read_text().replace('"issued": ', '"issued": 1', 1))
    r = CliRunner().invoke(main, ["audit", "verify", str(b)])
    assert r.exit_code == 1
    assert "counts.json" in r.output


def test_cli_export(tmp_path, db_url, monkeypatch):
    """`audit export` on a live database writes a bundle that verifies."""
    rehearse(SCENARIOS / "livelihood-basic.json", tmp_path / "run", database_url=db_url)
    env = {"BALLOT_DATABASE_URL": db_url, "BALLOT_KEYS_DIR": str(tmp_path / "run" / ".work" / "keys"),
           "BALLOT_INSTANCE_PATH": str(tmp_path / "instance")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    r = CliRunner().invoke(main, ["audit", "export", str(tmp_path / "bundle")])
    assert r.exit_code == 0, r.output
    s = verify_bundle(tmp_path / "bundle")
    assert s["records"] == 1 and s["ballots"] > 0
    # exporting again replaces the earlier bundle
    r = CliRunner().invoke(main, ["audit", "export", str(tmp_path / "bundle")])
    assert r.exit_code == 0, r.output
    assert verify_bundle(tmp_path / "bundle")["events"] == s["events"]


# --- the verifier's fast paths accept only what the service writes ---------------------------------

def test_intact_bundle_says_the_session_was_closed(bundle):
    """rehearse closes its session, so the bundle carries the signed session-close checkpoint."""
    s = verify_bundle(bundle)
    assert [x["closed"] for x in s["sessions"]] == [True]
    cps = json.loads((bundle / "checkpoints.json").read_text())
    assert cps[-1]["reason"] == f"session_closed:{s['sessions'][0]['id']}"
    assert cps[-1]["seq"] == s["sessions"][0]["closed_at_event"]
    assert any(c["reason"].startswith("vote_closed:") for c in cps)


def test_read_events_agrees_with_audit_event_hash(bundle):
    chain = check_event_chain(bundle)
    hashes, kinds, datas = chain.hashes, chain.kinds, chain.datas
    prev = audit.GENESIS
    for n, line in enumerate((bundle / "events.jsonl").read_text("utf-8").splitlines(), 1):
        ev = json.loads(line)
        assert hashes[n - 1] == ev["hash"] == audit.event_hash(prev, n, ev["at"], ev["kind"], ev["data"])
        assert kinds[n - 1] == ev["kind"] and datas[n - 1] == json.loads(ev["data"])
        prev = ev["hash"]
    assert "casts_accepted" in kinds and "cast_accepted" not in kinds


def _edit_line(b: Path, rel: str, pick, change) -> None:
    lines = (b / rel).read_text("utf-8").splitlines(keepends=True)
    i = next(i for i, x in enumerate(lines) if pick(x))
    new = change(lines[i])
    assert new != lines[i] and json.loads(new) == json.loads(lines[i])  # same meaning, other bytes
    lines[i] = new
    (b / rel).write_text("".join(lines), "utf-8")


NON_CANONICAL = {
    "ballot: space after colon": ("ballots/", lambda x: True, lambda x: x.replace('"marks":', '"marks": ', 1)),
    "ballot: escaped letter": ("ballots/", lambda x: True, lambda x: x.replace('"serial"', '"\\u0073erial"', 1)),
    "ballot: keys reordered": ("ballots/", lambda x: True, lambda x: json.dumps(
        dict(reversed(list(json.loads(x).items()))), ensure_ascii=False, separators=(",", ":")) + "\n"),
    "cast event: space": ("events.jsonl", lambda x: "casts_accepted" in x,
                          lambda x: x.replace('"at":null', '"at": null', 1)),
    "cast event: escaped letter in data": ("events.jsonl", lambda x: "casts_accepted" in x,
                                           lambda x: x.replace('\\"round_id', '\\"\\u0072ound_id', 1)),
    "cast event: escaped letter in kind": ("events.jsonl", lambda x: "casts_accepted" in x,
                                           lambda x: x.replace('"casts_accepted"', '"\\u0063asts_accepted"', 1)),
    "other event: space": ("events.jsonl", lambda x: "session_closed" in x,
                           lambda x: x.replace('"kind":', '"kind": ', 1)),
}


@pytest.mark.parametrize("case", sorted(NON_CANONICAL))
def test_non_canonical_lines_are_refused(bundle, tmp_path, case):
    target, pick, change = NON_CANONICAL[case]
    b = copy(bundle, tmp_path)
    rel = target if not target.endswith("/") else first(b, target)
    _edit_line(b, rel, pick, change)
    assert "canonical" in assert_deep_detects(b)


@pytest.mark.parametrize("bad", [None, [], {}, "x", -1, True])
def test_values_of_the_wrong_shape_fail_in_plain_words(bundle, tmp_path, bad):
    """Every field of an item and of a round in counts.json, set to a value of another shape:
    verify fails with BundleInvalid, never with a Python error."""
    counts = json.loads((bundle / "counts.json").read_text())
    item = counts["items"][0]
    paths = [("items", 0, k) for k in item] + [("items", 0, "rounds", 0, k) for k in item["rounds"][0]]
    for path in paths:
        b = copy(bundle, tmp_path / f"{'-'.join(map(str, path))}")

        def put(d, path=path):
            target = d
            for p in path[:-1]:
                target = target[p]
            if target[path[-1]] == bad:
                return
            target[path[-1]] = bad
        edit_json(b, "counts.json", put)
        rewrite_manifest(b)
        if json.loads((b / "counts.json").read_text()) == counts:
            continue
        with pytest.raises(BundleInvalid):
            verify_bundle(b)
