"""Benchmark: verify a national-scale audit bundle (2,977 members, 30 items).

The session is built with the domain functions (open_round, close_round, tally_round,
issue_record) and real terminal ballots: each is an RSA-PSS signature by the round's own key
(the announced one), exactly what a tablet holds after unblinding its blind signature, made
here directly with the round's private key while the round is open; casts are stored and
audited in bulk instead of one HTTP request each, and every eligible member is counted as
issued one blind signature, which are only shortcuts for building the data. Run:

    python benchmarks/bench_audit_verify.py [--members 2977] [--items 30] [--repeat 3] [--keep DIR]

The session is closed at the end (闭会), so the bundle carries the session-close checkpoint
as a real one does. Build and export are timed apart from verify; verify runs --repeat times
on the same bundle. Each line gives the machine's load average (1 min) and the CPU seconds
spent by this process and by verify's worker processes, so a slow figure on a busy machine
can be told apart from a slow verifier.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from sqlalchemy import insert, select, update  # noqa: E402

from ballot_service import rules
from ballot_service.bundle.export import export_bundle
from ballot_service.bundle.verify import verify_bundle
from ballot_service.config import Settings  # noqa: E402
from ballot_service.crypto import blind_rsa, keys  # noqa: E402
from ballot_service.db import make_engine, make_sessionmaker  # noqa: E402
from ballot_service.domain import audit, issuance, records, sittings, tally, voting
from ballot_service.domain.terminal_casts import retry_hash
from ballot_service.formats.canonical import canonical_json, sha256_hex  # noqa: E402
from ballot_service.formats.encoding import b64url_encode
from ballot_service.migrate import upgrade  # noqa: E402
from ballot_service.models import Attendance, Cast, Issuance, Member  # noqa: E402


def build(work: Path, n_members: int, n_items: int, seed: int = 7) -> tuple[Settings, object]:
    rng = random.Random(seed)
    url = f"sqlite:///{work / 'bench.sqlite3'}"
    upgrade(url)
    settings = Settings.from_env({"BALLOT_DATABASE_URL": url, "BALLOT_KEYS_DIR": str(work / "keys"),
                                  "BALLOT_INSTANCE_PATH": str(work), "BALLOT_KEY_PASSPHRASE": "bench-pass"})
    engine = make_engine(url)
    db = make_sessionmaker(engine)()
    body = sittings.create_body(db, "第十四届全国人民代表大会", "congress")
    keys.create_key(settings.keys_dir, keys.body_key_name(body.id), settings.key_passphrase)
    sitting = sittings.create_sitting(db, body, "第三次会议")
    db.execute(insert(Member), [{"body_id": body.id, "member_no": f"D{n:05d}", "name": f"代表{n:05d}",
                                 "seat": f"S{n:05d}", "in_office": True} for n in range(1, n_members + 1)])
    member_ids = list(db.scalars(select(Member.id).where(Member.body_id == body.id).order_by(Member.id)))
    present = member_ids[: n_members - 27]
    db.execute(insert(Attendance), [{"sitting_id": sitting.id, "member_id": m, "status": "present",
                                     "method": "import"} for m in present])
    db.flush()
    for i in range(n_items):
        kind = ("livelihood_projects", "appointment", "resolution")[i % 3]
        if kind == "livelihood_projects":
            cands = [{"key": f"P{j:02d}", "title": f"民生实事项目{j}"} for j in range(1, 13)]
            item = sittings.create_item(db, sitting, key=f"ms{i:02d}", kind=kind, title=f"民生实事{i}",
                                        candidates=cands, places=10)
        elif kind == "appointment":
            cands = [{"key": f"N{j}", "title": f"被提名人{j}"} for j in range(1, 4)]
            item = sittings.create_item(db, sitting, key=f"rm{i:02d}", kind=kind, title=f"任命{i}",
                                        candidates=cands)
        else:
            item = sittings.create_item(db, sitting, key=f"res{i:02d}", kind=kind, title=f"决议{i}")
        rnd = voting.open_round(db, settings, item, override_reason="benchmark: simulated tablets")
        # Shortcut for "each member's tablet took its blind signature": count one issued per member.
        db.execute(update(Issuance).where(Issuance.round_id == rnd.id).values(issued=1, allowed=1))
        private = serialization.load_der_private_key(issuance.round_private_key(settings, body.id, rnd),
                                                     password=None)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=blind_rsa.S_LEN)
        cand_keys = list(rnd.candidate_keys)
        casts = []
        for _ in range(len(present) - rng.randrange(0, 20)):
            serial_bytes = rng.randbytes(blind_rsa.SERIAL_LEN)
            prefix = rng.randbytes(blind_rsa.PREFIX_LEN)
            sig = private.sign(prefix + blind_rsa.ballot_message(rnd.ref, serial_bytes), pss, hashes.SHA384())
            serial = serial_bytes.hex()
            ballot = {"prefix": b64url_encode(prefix), "round_ref": rnd.ref, "serial": serial,
                      "signature": b64url_encode(sig)}
            if kind == "livelihood_projects":
                raw = {k: rng.choices(["for", "against", "abstain"], [8, 1, 1])[0] for k in cand_keys}
            else:
                raw = {k: rng.choices(["for", "against", "abstain"], [9, 1, 1])[0] for k in cand_keys}
            marks = rules.normalise_marks(raw, cand_keys)
            digest = sha256_hex(canonical_json({"ballot": ballot, "marks": marks}))
            casts.append({"id": sha256_hex(serial.encode())[:32], "round_id": rnd.id,
                          "serial": serial, "signature": ballot["signature"], "msg_prefix": ballot["prefix"],
                          "retry_hash": retry_hash(f"bench-retry-{serial}"), "marks": marks,
                          "channel": "terminal", "receipt": sha256_hex(b"receipt " + serial_bytes),
                          "submission_digest": digest, "member_id": None})
        db.execute(insert(Cast), casts)
        # as intake's batches would: a count, no event per cast (one batch here)
        audit.append_many(db, body.id, [("casts_accepted", {"round_id": rnd.id, "count": len(casts)})], timed=False)
        voting.close_round(db, settings, item)
        result = tally.tally_round(db, item, rnd)
        if result["status"] == "runoff_pending":
            continue
        records.issue_record(db, settings, item)
        db.commit()
    sittings.close_sitting(db, settings, sitting)
    db.commit()
    return settings, db


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def cpu_seconds() -> tuple[float, float]:
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=2977)
    ap.add_argument("--items", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3, help="verify runs on the same bundle (default 3)")
    ap.add_argument("--keep", type=Path, help="keep the bundle in this folder")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {cores} cores usable; {load()} at start")
    work = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    try:
        t0 = time.perf_counter()
        settings, db = build(work, args.members, args.items)
        t1 = time.perf_counter()
        out = args.keep or work / "bundle"
        export_bundle(db, settings, out)
        db.close()
        t2 = time.perf_counter()
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(f"build {t1 - t0:.1f} s (session of {args.members} members, {args.items} items, closed), "
              f"export {t2 - t1:.1f} s, bundle {size / 1e6:.1f} MB")
        times = []
        for n in range(1, args.repeat + 1):
            before_load = load()
            c0 = cpu_seconds()
            t = time.perf_counter()
            summary = verify_bundle(out)
            dt = time.perf_counter() - t
            c1 = cpu_seconds()
            times.append(dt)
            print(f"verify run {n}: {dt:.2f} s wall; cpu {c1[0] - c0[0]:.1f} s main + {c1[1] - c0[1]:.1f} s workers; "
                  f"{before_load} before")
        closed = sum(1 for x in summary["sessions"] if x["closed"])
        print(f"bundle: {summary['ballots']} ballots, {summary['events']} events, {summary['checkpoints']} "
              f"checkpoints ({closed} session close), {summary['records']} records, "
              f"{summary['rounds_recounted']} rounds recounted")
        verdict = "met" if min(times) <= 10 else "NOT met"
        print(f"verify: best {min(times):.2f} s, median {statistics.median(times):.2f} s of {len(times)} "
              f"(target <= 10 s: {verdict}); {load()} at end")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
