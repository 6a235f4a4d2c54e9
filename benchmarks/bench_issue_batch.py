"""CPU time of a blind-signature count batch, in process: what the issuance group commit's
writer thread spends storing one batch (domain/issuance_counts.take_counts and its COMMIT),
without HTTP, RSA or a load generator.

When a hall's vote opens, 3,000 tablets ask for their blind signature within seconds and
their counts are taken in batches of about ten (the two workers take SQLite's write lock in
turn): 300 batches, whose fixed cost per batch (statements, COMMIT) is most of their CPU
(benchmarks/bench_hall.py; issue #21). This stores every member's count of one open round in
batches of --batch jobs as the writer does (each job names its terminal, the member found
under the lock, with the blinded value's digest) and prints the thread CPU and wall time per
batch, after one warm-up batch; every job must be counted. On PostgreSQL the server's own
CPU (its backends) is not in these figures.

    python benchmarks/bench_issue_batch.py                       # SQLite file, 640 deputies, batches of 10
    python benchmarks/bench_issue_batch.py --database "$url"     # PostgreSQL (scripts/pg-throwaway)
    python benchmarks/bench_issue_batch.py --profile             # and cProfile's top functions
"""
from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_casts import scratch_database, set_round, setup  # noqa: E402


def run(tmp: Path, url: str, members: int, batch: int, profile: bool) -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from ballot_service import create_app
    from ballot_service.domain import issuance_counts
    from ballot_service.models import Item, Terminal

    env, _, items = setup(tmp, url, members, 1)
    set_round(url, env, items[0], "open")
    engine = create_app(env).extensions["ballot_engine"]
    with Session(engine) as db:
        item = db.get(Item, items[0])
        round_id, sitting_id = item.rounds[-1].id, item.sitting_id
        terminals = db.scalars(select(Terminal.id).where(Terminal.sitting_id == sitting_id).order_by(Terminal.id)).all()
    jobs = [issuance_counts.IssueJob((round_id,), None, sitting_id, t, (hashlib.sha256(os.urandom(32)).digest(),))
            for t in terminals]
    batches = [jobs[i:i + batch] for i in range(0, len(jobs), batch)]
    issuance_counts.run_issue_batch(engine, batches[0])  # warm-up: the statements' first compiles
    prof = cProfile.Profile() if profile else None
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    if prof:
        prof.enable()
    for b in batches[1:]:
        issuance_counts.run_issue_batch(engine, b)
    if prof:
        prof.disable()
    n = len(batches) - 1
    cpu, wall = 1000 * (time.thread_time() - cpu0) / n, 1000 * (time.perf_counter() - wall0) / n
    counted = sum(1 for j in jobs if j.result and j.error is None)
    print(f"{n} batches of {batch}: writer thread CPU {cpu:.2f} ms a batch ({cpu / batch:.3f} ms a count), "
          f"wall {wall:.2f} ms a batch{' (profiled)' if prof else ''}; {counted}/{len(jobs)} counted")
    if counted != len(jobs):
        raise SystemExit("not every count was taken")
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=640)
    ap.add_argument("--batch", type=int, default=10, help="jobs a batch (a hall's opening: about 10)")
    ap.add_argument("--database", default=None,
                    help="SQLAlchemy URL of an empty PostgreSQL database (default: a new SQLite file)")
    ap.add_argument("--profile", action="store_true", help="also print cProfile's top functions")
    args = ap.parse_args()
    with scratch_database("bench-issue-batch-", args.database, f"{args.members} counts") as (tmp, url):
        run(tmp, url, args.members, args.batch, args.profile)


if __name__ == "__main__":
    main()
