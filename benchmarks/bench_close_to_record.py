"""Time from closing a vote of 3,000 ballots x 20 candidates to its signed record.

Set-up uses the domain functions directly (no HTTP) so only close → tally → record is
timed: each terminal gets its blind signature (issuance.blind_sign_for_terminal, the tablet's
half in crypto/tablet.py) and casts anonymously (terminal_casts.accept). Prints the figures; the target is <= 300 ms. Run:
    python benchmarks/bench_close_to_record.py [--members 3000] [--candidates 20] [--database URL]
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from ballot_service.config import Settings
from ballot_service.crypto import blind_ballots, keys, tablet
from ballot_service.db import make_engine, make_sessionmaker
from ballot_service.domain import issuance, records, sittings, tally, terminal_casts, voting
from ballot_service.domain.roster import import_roster
from ballot_service.domain.terminals import register_terminal
from ballot_service.formats.encoding import b64url_encode
from ballot_service.formats.roster import RosterRow
from ballot_service.migrate import upgrade


def setup(tmp: Path, members: int, candidates: int, url: str | None = None):
    url = url or f"sqlite:///{tmp / 'bench.sqlite3'}"
    upgrade(url)
    settings = Settings.from_env({"BALLOT_DATABASE_URL": url, "BALLOT_KEYS_DIR": str(tmp),
                                  "BALLOT_KEY_PASSPHRASE": "bench-passphrase", "BALLOT_INSTANCE_PATH": str(tmp)})
    db = make_sessionmaker(make_engine(url))()
    body = sittings.create_body(db, "全国人民代表大会", "congress")
    keys.create_key(settings.keys_dir, keys.body_key_name(body.id), settings.key_passphrase)
    import_roster(db, body, [RosterRow(i, f"M{i:04d}", f"代表{i:04d}", None, f"S{i:04d}", None)
                             for i in range(1, members + 1)], "bench")
    sitting = sittings.create_sitting(db, body, "第一次会议")
    creds = {}
    for m in body.members:
        term, cred = register_terminal(db, sitting, f"席位{m.seat}", "seat", m.seat)
        sittings.set_attendance(db, sitting, m, "present", "terminal", terminal_id=term.id)
        creds[term.id] = (term, cred)
    places = max(1, candidates * 3 // 4)
    item = sittings.create_item(db, sitting, key="ms", kind="livelihood_projects", title="民生实事项目票决",
                                candidates=[{"key": f"P{i:02d}", "title": f"项目{i}"} for i in range(1, candidates + 1)],
                                places=places)
    rnd = voting.open_round(db, settings, item, override_reason="benchmark: simulated tablets")
    db.commit()
    pub = blind_ballots.load_round_key(rnd.blind_public_key)
    rng = random.Random(7)
    keys_ = [c.key for c in item.candidates]
    for term, _cred in creds.values():
        pending = tablet.start(pub, rnd.ref)
        blind_sig = issuance.blind_sign_for_terminal(db, settings, term, rnd.ref, pending.blinded_text)
        ballot = tablet.finish(pub, pending, b64url_encode(blind_sig))
        # Most deputies back most of a favoured shortlist, so several projects pass.
        fors = set(rng.sample(keys_[:places + 3], rng.randint(places - 3, places)))
        marks = {k: ("for" if k in fors else rng.choice(["against", "abstain"])) for k in keys_}
        terminal_casts.accept(db, settings, {**ballot, "marks": marks, "retry_id": tablet.new_retry_id()})
    db.commit()
    return settings, db, item


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=3000)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--database", default=None,
                    help="SQLAlchemy URL of an empty PostgreSQL database (scripts/pg-throwaway start prints one); "
                         "default: a new SQLite file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        settings, db, item = setup(Path(d), args.members, args.candidates, args.database)
        print(f"set-up: {args.members} members, {args.candidates} candidates, "
              f"{args.members} casts in {time.perf_counter() - t0:.1f} s")
        t = {}
        start = time.perf_counter()
        voting.close_round(db, settings, item)
        db.commit()
        t["close"] = time.perf_counter()
        result = tally.tally_item(db, item)
        db.commit()
        t["tally"] = time.perf_counter()
        rec = records.issue_record(db, settings, item)
        db.commit()
        t["record"] = time.perf_counter()
        print(f"status {result['status']}, returned {result['returned']}, selected {len(result['selected'])}")
        print(f"close  {1000 * (t['close'] - start):7.1f} ms")
        print(f"tally  {1000 * (t['tally'] - t['close']):7.1f} ms")
        print(f"record {1000 * (t['record'] - t['tally']):7.1f} ms  (signed, fingerprint {rec.key_fingerprint})")
        print(f"close -> signed record: {1000 * (t['record'] - start):.1f} ms (target <= 300 ms)")


if __name__ == "__main__":
    main()
