"""Signed ballot tokens and paper-ballot issuance: every refusal path."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ballot_service.cli import main
from ballot_service.crypto import keys
from ballot_service.db import make_engine, make_sessionmaker
from ballot_service.domain.paper_ballots import (
    check_paper_serial,
    create_paper_ballots,
    hand_out,
    paper_counts,
    resolve_serial,
)
from ballot_service.domain.sittings import create_body, create_item, create_sitting
from ballot_service.errors import Conflict, InvalidInput
from ballot_service.formats.ballots import (
    REFUSAL_STATUS,
    BallotRefused,
    make_token,
    text_to_token,
    token_to_text,
    verify_token,
)
from ballot_service.formats.canonical import canonical_json
from ballot_service.formats.encoding import b64url_encode
from ballot_service.migrate import upgrade
from ballot_service.models import AuditEvent, PaperBallot, Round

CTX = {"body": 1, "session": 2, "item": 3, "round_no": 1}


@pytest.fixture
def key(settings_env):
    keys.clear_cache()
    return keys.create_key(Path(settings_env["BALLOT_KEYS_DIR"]), "body-1", "pw")


@pytest.fixture
def other_key(settings_env):
    return keys.create_key(Path(settings_env["BALLOT_KEYS_DIR"]), "body-2", "pw")


def _token(key, **over):
    ctx = {**CTX, **over}
    return make_token(key, ctx["body"], ctx["session"], ctx["item"], ctx["round_no"])


def _refused(reason, fn, *a, **kw):
    with pytest.raises(BallotRefused) as exc:
        fn(*a, **kw)
    assert exc.value.reason == reason, exc.value.message
    assert exc.value.status == REFUSAL_STATUS[reason]
    assert exc.value.to_dict()["reason"] == reason
    return exc.value


# --- tokens ------------------------------------------------------------------------------

def test_token_shape_and_signature(key):
    t = _token(key)
    p = t["payload"]
    assert set(p) == {"v", "body", "session", "item", "round", "serial"}
    assert p["v"] == 1 and len(p["serial"]) == 32 and p["serial"] == p["serial"].lower()
    int(p["serial"], 16)
    assert "=" not in t["sig"]
    sig = base64.urlsafe_b64decode(t["sig"] + "=" * (-len(t["sig"]) % 4))
    key.public_key.verify(sig, canonical_json(p))  # an outside check: plain Ed25519 over canonical JSON
    assert verify_token(key.public_key, t, **CTX) == p


def test_serials_are_random(key):
    serials = {_token(key)["payload"]["serial"] for _ in range(200)}
    assert len(serials) == 200


def test_text_round_trip(key):
    t = _token(key)
    text = token_to_text(t)
    assert text.startswith("BS1.") and text.count(".") == 2
    back = text_to_token(text)
    assert back == t
    payload_b64 = text.split(".")[1]
    raw = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4))
    assert raw == canonical_json(t["payload"])
    assert verify_token(key.public_key, back, **CTX)["serial"] == t["payload"]["serial"]


def test_forged_signature(key, other_key):
    t = _token(key)
    forged = dict(t, sig=b64url_encode(other_key.sign(canonical_json(t["payload"]))))
    _refused("forged", verify_token, key.public_key, forged, **CTX)


def test_other_key_is_forged(key, other_key):
    t = _token(other_key)
    _refused("forged", verify_token, key.public_key, t, **CTX)


def test_altered_payload_one_character(key):
    t = _token(key)
    serial = t["payload"]["serial"]
    altered_serial = serial[:-1] + ("0" if serial[-1] != "0" else "1")
    altered = {"payload": dict(t["payload"], serial=altered_serial), "sig": t["sig"]}
    _refused("forged", verify_token, key.public_key, altered, **CTX)
    # the same in the text form: a field value changed by one character, re-encoded
    raw = canonical_json(t["payload"]).decode().replace('"item":3', '"item":4')
    text = f"BS1.{b64url_encode(raw.encode())}.{t['sig']}"
    _refused("forged", verify_token, key.public_key, text_to_token(text), **{**CTX, "item": 4})


def test_every_single_character_change_of_text_is_refused(key):
    text = token_to_text(_token(key))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    for i, ch in enumerate(text):
        repl = alphabet[(alphabet.index(ch) + 1) % len(alphabet)] if ch in alphabet else "A"
        changed = text[:i] + repl + text[i + 1:]
        with pytest.raises(BallotRefused) as exc:
            verify_token(key.public_key, text_to_token(changed), **CTX)
        assert exc.value.reason in ("malformed", "forged"), (i, exc.value.reason)


def test_wrong_item_and_round(key):
    t = _token(key)
    _refused("wrong_item", verify_token, key.public_key, t, **{**CTX, "item": 9})
    _refused("wrong_item", verify_token, key.public_key, t, **{**CTX, "session": 9})
    _refused("wrong_item", verify_token, key.public_key, t, **{**CTX, "body": 9})
    _refused("wrong_round", verify_token, key.public_key, t, **{**CTX, "round_no": 2})


@pytest.mark.parametrize("text", [
    "", "garbage", "BS1.abc", "BS2.eyJ9.AAAA", "BS1..", "BS1.!!!.???", "BS1.eyJ2IjoxfQ.AAAA",
    "BS1.eyJ2IjoxfQ==.AAAA", "BS1." + "A" * 3000 + ".A", None, 12, b"\xff\xfe",
])
def test_malformed_text(text):
    _refused("malformed", text_to_token, text)


def test_malformed_structures(key):
    t = _token(key)
    p = t["payload"]
    bad_payloads = [
        {**p, "extra": 1},
        {k: v for k, v in p.items() if k != "round"},
        {**p, "v": 2},
        {**p, "v": True},
        {**p, "item": "3"},
        {**p, "item": True},
        {**p, "item": 0},
        {**p, "item": 3.0},
        {**p, "serial": p["serial"].upper()},
        {**p, "serial": p["serial"][:-1]},
        [],
    ]
    for bp in bad_payloads:
        _refused("malformed", verify_token, key.public_key, {"payload": bp, "sig": t["sig"]}, **CTX)
    for bad in ({"payload": p}, {"payload": p, "sig": t["sig"], "x": 1}, {"payload": p, "sig": 5},
                {"payload": p, "sig": t["sig"] + "A"}, {"payload": p, "sig": t["sig"][:-4]}, "BS1.x.y", None):
        _refused("malformed", verify_token, key.public_key, bad, **CTX)


def test_non_canonical_payload_text_refused(key):
    t = _token(key)
    loose = json.dumps(t["payload"], indent=1).encode()
    _refused("malformed", text_to_token, f"BS1.{b64url_encode(loose)}.{t['sig']}")


# --- paper ballots -----------------------------------------------------------------------

@pytest.fixture
def item(db):
    body = create_body(db, "示范市第十七届人民代表大会", "congress")
    sitting = create_sitting(db, body, "第四次会议")
    it = create_item(db, sitting, key="projects", kind="livelihood_projects", title="2025年民生实事项目票决",
                     places=2, candidates=[{"key": f"p{i}", "title": f"项目{i}"} for i in range(1, 5)],
                     channel="paper")
    db.flush()
    return it


def test_create_paper_ballots(db, item, body_key):
    round_ = item.rounds[0]
    tokens = create_paper_ballots(db, body_key, item, round_, 5)
    assert len(tokens) == 5
    rows = db.scalars(select(PaperBallot).where(PaperBallot.round_id == round_.id)).all()
    assert {r.serial for r in rows} == {t["payload"]["serial"] for t in tokens}
    assert not any(r.handed_out for r in rows)
    for t in tokens:
        p = verify_token(body_key.public_key, t, body=item.sitting.body_id, session=item.sitting_id,
                         item=item.id, round_no=1)
        assert p["round"] == 1
    ev = db.scalars(select(AuditEvent).where(AuditEvent.kind == "paper_ballots_printed")).one()
    data = json.loads(ev.data)
    assert data["count"] == 5 and data["round_id"] == round_.id
    assert not any(t["payload"]["serial"] in ev.data for t in tokens)  # counts only
    assert paper_counts(db, round_) == {"printed": 5, "handed_out": 0}


def test_create_paper_ballots_validation(db, item, body_key):
    round_ = item.rounds[0]
    for bad in (0, -1, 100_001, True, "3"):
        with pytest.raises(InvalidInput):
            create_paper_ballots(db, body_key, item, round_, bad)
    round_.status = "tallied"
    with pytest.raises(Conflict):
        create_paper_ballots(db, body_key, item, round_, 1)


def test_hand_out_and_counting_checks(db, item, body_key):
    round_ = item.rounds[0]
    tokens = create_paper_ballots(db, body_key, item, round_, 3)
    s0, s1 = tokens[0]["payload"]["serial"], tokens[1]["payload"]["serial"]
    _refused("spare", check_paper_serial, db, s0, round_)
    assert hand_out(db, [s0], round_) == 1
    check_paper_serial(db, s0, round_)  # handed out: accepted
    assert db.get(PaperBallot, s0).handed_out
    _refused("spare", check_paper_serial, db, s1, round_)
    with pytest.raises(Conflict) as exc:
        hand_out(db, [s1, s0], round_)  # the whole stack is refused
    assert not isinstance(exc.value, BallotRefused) and "already been handed out" in exc.value.message
    assert not db.get(PaperBallot, s1).handed_out
    unknown = "0" * 32
    _refused("unknown", hand_out, db, [unknown], round_)
    _refused("unknown", check_paper_serial, db, unknown, round_)
    _refused("malformed", hand_out, db, ["xyz"], round_)
    with pytest.raises(InvalidInput):
        hand_out(db, [s1, s1], round_)
    # the desk records a count per stack: no serial, no identity, no time, no order
    ev = db.scalars(select(AuditEvent).where(AuditEvent.kind == "paper_ballots_handed_out")).one()
    assert ev.at is None and json.loads(ev.data) == {"round_id": round_.id, "count": 1}
    assert paper_counts(db, round_) == {"printed": 3, "handed_out": 1}


def test_serial_of_another_round_is_unknown(db, item, body_key):
    r1 = item.rounds[0]
    tokens = create_paper_ballots(db, body_key, item, r1, 1)
    r2 = Round(item_id=item.id, number=2, places=1, candidate_keys=["p1", "p2"], status="pending")
    db.add(r2)
    db.flush()
    serial = tokens[0]["payload"]["serial"]
    _refused("unknown", hand_out, db, [serial], r2)
    _refused("unknown", check_paper_serial, db, serial, r2)
    with pytest.raises(BallotRefused) as exc:
        verify_token(body_key.public_key, tokens[0], body=item.sitting.body_id, session=item.sitting_id,
                     item=item.id, round_no=2)
    assert exc.value.reason == "wrong_round"


def test_resolve_serial_prefix(db, item, body_key):
    round_ = item.rounds[0]
    serial = create_paper_ballots(db, body_key, item, round_, 2)[0]["payload"]["serial"]
    assert resolve_serial(db, f"{serial[:4]} {serial[4:8]}", round_) == serial
    assert resolve_serial(db, serial.upper(), round_) == serial
    _refused("malformed", resolve_serial, db, "abc", round_)


# --- command line ------------------------------------------------------------------------

def _seed(settings_env):
    upgrade(settings_env["BALLOT_DATABASE_URL"])
    engine = make_engine(settings_env["BALLOT_DATABASE_URL"])
    with make_sessionmaker(engine)() as db:
        body = create_body(db, "示范市人民代表大会常务委员会", "standing_committee")
        sitting = create_sitting(db, body, "第三十次会议")
        it = create_item(db, sitting, key="appoint", kind="appointment", title="任命案表决",
                         candidates=[{"key": "a", "title": "张三 任某局局长"}, {"key": "b", "title": "李四 任某局副局长"}],
                         channel="paper")
        db.commit()
        ids = body.id, sitting.id, it.id
    engine.dispose()
    return ids


def test_cli_print_hand_out_verify(settings_env):
    keys.clear_cache()
    body_id, sitting_id, item_id = _seed(settings_env)
    runner = CliRunner()
    env = settings_env
    r = runner.invoke(main, ["ballots", "print", str(item_id), "--count", "3"], env=env)
    assert r.exit_code != 0 and f"keys create {body_id}" in r.output  # no key yet
    assert runner.invoke(main, ["keys", "create", str(body_id)], env=env).exit_code == 0
    r = runner.invoke(main, ["ballots", "print", str(item_id), "--count", "3", "--processes", "1"], env=env)
    assert r.exit_code == 0, r.output
    pdfs = sorted(Path(env["BALLOT_BALLOTS_DIR"]).glob("*.pdf"))
    assert [p.name for p in pdfs] == [f"item{item_id}-round1-batch1-part01.pdf"]

    engine = make_engine(env["BALLOT_DATABASE_URL"])
    with make_sessionmaker(engine)() as db:
        serials = list(db.scalars(select(PaperBallot.serial)))
    engine.dispose()
    assert len(serials) == 3
    pub = keys.load_public_key(Path(env["BALLOT_KEYS_DIR"]) / f"body-{body_id}.pub.pem")
    priv = keys.load_key(Path(env["BALLOT_KEYS_DIR"]), f"body-{body_id}", env["BALLOT_KEY_PASSPHRASE"])
    assert keys.fingerprint(pub) == priv.fingerprint
    # the same key re-signs the same payload identically (Ed25519 is deterministic): the QR text
    text = token_to_text(make_token(priv, body_id, sitting_id, item_id, 1, serial=serials[0]))

    r = runner.invoke(main, ["ballots", "verify", text], env=env)
    assert r.exit_code == 1 and "spare" in r.output and "signature valid" in r.output
    r = runner.invoke(main, ["ballots", "hand-out", str(item_id), text], env=env)
    assert r.exit_code == 0, r.output
    assert "发出 1 / 印制 3" in r.output
    r = runner.invoke(main, ["ballots", "hand-out", str(item_id), text], env=env)
    assert r.exit_code != 0 and "already been handed out" in r.output
    r = runner.invoke(main, ["ballots", "verify", text], env=env)
    assert r.exit_code == 0 and "handed out" in r.output
    r = runner.invoke(main, ["ballots", "hand-out", str(item_id), serials[1][:8], serials[2]], env=env)
    assert r.exit_code == 0 and "handed out: 2" in r.output, r.output

    forged_text = token_to_text(make_token(keys.create_key(Path(env["BALLOT_KEYS_DIR"]), "x", "pw"),
                                           body_id, sitting_id, item_id, 1, serial=serials[2]))
    r = runner.invoke(main, ["ballots", "verify", forged_text], env=env)
    assert r.exit_code == 1 and "forged" in r.output
    r = runner.invoke(main, ["ballots", "hand-out", str(item_id), forged_text], env=env)
    assert r.exit_code != 0 and "signature" in r.output
    r = runner.invoke(main, ["ballots", "verify", "BS1.nonsense"], env=env)
    assert r.exit_code == 1 and "malformed" in r.output
    unknown = token_to_text(make_token(priv, body_id, sitting_id, item_id, 1))
    r = runner.invoke(main, ["ballots", "verify", unknown], env=env)
    assert r.exit_code == 1 and "unknown" in r.output
    r = runner.invoke(main, ["ballots", "hand-out", str(item_id), unknown], env=env)
    assert r.exit_code != 0

    # After the session is closed (闭会) no more ballots are printed, and nothing is written.
    assert runner.invoke(main, ["session", "close", str(sitting_id)], env=env).exit_code == 0
    r = runner.invoke(main, ["ballots", "print", str(item_id), "--count", "2", "--processes", "1"], env=env)
    assert r.exit_code != 0 and "printing ballots" in r.output, r.output
    assert [p.name for p in sorted(Path(env["BALLOT_BALLOTS_DIR"]).glob("*.pdf"))] == [pdfs[0].name]
