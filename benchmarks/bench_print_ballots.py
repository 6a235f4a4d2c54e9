"""Time to sign and write 3,000 paper ballots for a 20-candidate item (target: <= 60 s).

    python benchmarks/bench_print_ballots.py [--count 3000] [--candidates 20] [--processes N] [--keep DIR]

Runs the same code as `ballot-service ballots print` (sign, record PaperBallot rows in a
throwaway SQLite database, render PDFs) and prints the times.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--processes", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="write the PDFs here and keep them")
    args = ap.parse_args()

    from ballot_service.crypto import keys
    from ballot_service.db import make_engine, make_sessionmaker
    from ballot_service.domain.paper_ballots import create_paper_ballots
    from ballot_service.domain.sittings import create_body, create_item, create_sitting
    from ballot_service.migrate import upgrade
    from ballot_service.render.paper import print_paper_ballots

    work = Path(tempfile.mkdtemp(prefix="bench-ballots-"))
    out = args.keep or work / "ballots"
    try:
        url = f"sqlite:///{work / 'bench.sqlite3'}"
        upgrade(url)
        engine = make_engine(url)
        db = make_sessionmaker(engine)()
        body = create_body(db, "示范市第十七届人民代表大会", "congress")
        sitting = create_sitting(db, body, "第四次会议")
        item = create_item(
            db, sitting, key="projects", kind="livelihood_projects", title="2025年示范市民生实事项目人大代表票决",
            places=min(15, args.candidates), channel="paper",
            candidates=[{"key": f"p{i}", "title": f"候选项目{i}：新建改扩建公办中小学和幼儿园，新增学位"}
                        for i in range(1, args.candidates + 1)])
        key = keys.create_key(work / "keys", keys.body_key_name(body.id), "bench")

        t0 = time.perf_counter()
        tokens = create_paper_ballots(db, key, item, item.rounds[0], args.count)
        t1 = time.perf_counter()
        paths = print_paper_ballots(item, item.rounds[0], tokens, out, key_fingerprint=key.fingerprint,
                                    processes=args.processes)
        t2 = time.perf_counter()
        db.commit()
        t3 = time.perf_counter()
        db.close()
        engine.dispose()
        size = sum(p.stat().st_size for p in paths)
        print(f"ballots: {args.count}, candidates: {args.candidates}, CPUs: {os.cpu_count()}, "
              f"processes: {args.processes or 'auto'}")
        print(f"sign + record rows: {t1 - t0:.2f} s")
        print(f"render PDFs:        {t2 - t1:.2f} s ({len(paths)} files, {size / 1e6:.1f} MB)")
        print(f"commit:             {t3 - t2:.2f} s")
        print(f"total:              {t3 - t0:.2f} s for {args.count} ballots "
              f"({(t3 - t0) / args.count * 1000:.1f} ms per ballot)")
        if args.keep:
            print(f"PDFs kept in {out}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
