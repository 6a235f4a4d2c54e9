"""Throughput of cast intake over HTTP against a real `ballot-service serve` (SQLite file DB).

Sets up a congress of 3,000 members, each checked in at a seat terminal, and one
livelihood-projects item per worker count (20 candidates, 10 places) using the domain functions
directly; then for each worker count: open the item, start the server, fetch all 3,000 ballots
(untimed), and time 3,000 casts from CONCURRENCY concurrent clients. Also times a bare durable
SQLite insert loop with the same PRAGMAs as ballot_service/db.py, for comparison.

    python benchmarks/bench_casts.py                 # workers 2, 4, 8
    python benchmarks/bench_casts.py --workers 4 --members 3000 --concurrency 200

Targets: >= 1,000 accepted casts/s, p99 <= 150 ms.
"""
from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers_live import LiveServer, server_env  # noqa: E402

PASSPHRASE = "bench-passphrase"
N_CANDIDATES, PLACES = 20, 10


def setup(tmp: Path, url: str, members: int, n_items: int):
    from ballot_service import auth, keys, sittings
    from ballot_service.db import make_engine, make_sessionmaker
    from ballot_service.roster import RosterRow, import_roster
    from ballot_service.schema import upgrade

    env = server_env(tmp, url, passphrase=PASSPHRASE)
    upgrade(url)
    engine = make_engine(url)
    db = make_sessionmaker(engine)()
    body = sittings.create_body(db, "基准测试市人民代表大会", "congress")
    key = keys.create_key(Path(env["BALLOT_KEYS_DIR"]), keys.body_key_name(body.id), PASSPHRASE)
    body.key_name = key.name
    nos = [f"D{i:05d}" for i in range(1, members + 1)]
    import_roster(db, body, [RosterRow(i + 1, no, f"代表{no}", None, no, None) for i, no in enumerate(nos)],
                  source="bench")
    sitting = sittings.create_sitting(db, body, "第一次会议")
    creds = []
    from ballot_service.models import Member
    from sqlalchemy import select

    by_no = {m.member_no: m for m in db.scalars(select(Member).where(Member.body_id == body.id))}
    for no in nos:
        term, cred = auth.register_terminal(db, sitting, f"席位{no}", "seat", seat=no)
        sittings.set_attendance(db, sitting, by_no[no], "present", "terminal", terminal_id=term.id)
        creds.append(cred)
    items = []
    for k in range(n_items):
        item = sittings.create_item(
            db, sitting, key=f"projects-{k}", kind="livelihood_projects", title=f"民生实事项目票决 {k}",
            places=PLACES, candidates=[{"key": f"p{j:02d}", "title": f"项目{j}"} for j in range(N_CANDIDATES)])
        items.append(item.id)
    db.commit()
    db.close()
    engine.dispose()
    return env, creds, items


def set_round(url: str, env: dict, item_id: int, action: str) -> None:
    from ballot_service import voting
    from ballot_service.config import Settings
    from ballot_service.db import make_engine, make_sessionmaker
    from ballot_service.models import Item

    settings = Settings.from_env({**os.environ, **env})
    engine = make_engine(url)
    db = make_sessionmaker(engine)()
    item = db.get(Item, item_id)
    (voting.open_round if action == "open" else voting.close_round)(db, settings, item)
    db.commit()
    db.close()
    engine.dispose()


def random_marks(rng: random.Random) -> dict:
    keys = [f"p{j:02d}" for j in range(N_CANDIDATES)]
    chosen = set(rng.sample(keys, rng.randint(0, PLACES)))
    return {k: ("for" if k in chosen else rng.choice(("against", "abstain"))) for k in keys}


def run_one(url: str, env: dict, creds: list[str], item_id: int, workers: int, threads: int,
            concurrency: int) -> dict:
    set_round(url, env, item_id, "open")
    srv = LiveServer.start(env, workers=workers, threads=threads)
    try:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        local = threading.local()

        def client():
            if not hasattr(local, "c"):
                local.c = httpx.Client(base_url=srv.base_url, timeout=60, limits=limits)
            return local.c

        def fetch(cred):
            r = client().get("/api/terminal/ballot", headers={"Authorization": f"Bearer {cred}"})
            r.raise_for_status()
            return r.json()["ballot"]

        with ThreadPoolExecutor(32) as ex:
            ballots = list(ex.map(fetch, creds))
        rng = random.Random(item_id)
        jobs = [(cred, b, random_marks(rng)) for cred, b in zip(creds, ballots)]

        local = threading.local()  # fresh connections for the timed part
        lat: list[float] = []
        statuses: list[int] = []
        lock = threading.Lock()
        start_gate = threading.Barrier(concurrency + 1)
        it = iter(jobs)
        it_lock = threading.Lock()

        def worker():
            c = httpx.Client(base_url=srv.base_url, timeout=60)
            start_gate.wait()
            while True:
                with it_lock:
                    job = next(it, None)
                if job is None:
                    break
                cred, ballot, marks = job
                t0 = time.perf_counter()
                try:
                    status = c.post("/api/terminal/cast", json={"ballot": ballot, "marks": marks},
                                    headers={"Authorization": f"Bearer {cred}"}).status_code
                except httpx.HTTPError as exc:  # counted, never hidden
                    status = f"error:{type(exc).__name__}"
                dt = time.perf_counter() - t0
                with lock:
                    lat.append(dt)
                    statuses.append(status)
            c.close()

        ths = [threading.Thread(target=worker) for _ in range(concurrency)]
        for t in ths:
            t.start()
        start_gate.wait()
        t0 = time.perf_counter()
        for t in ths:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        srv.stop()
    set_round(url, env, item_id, "close")
    lat.sort()
    accepted = statuses.count(201)
    return {"workers": workers, "threads": threads, "casts": len(statuses), "accepted": accepted,
            "other_statuses": {s: statuses.count(s) for s in set(statuses) if s != 201},
            "wall_s": wall, "accepted_per_s": accepted / wall,
            "p50_ms": 1000 * statistics.median(lat), "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))],
            "max_ms": 1000 * lat[-1]}


def bare_sqlite(path: Path, rows: int) -> float:
    """One INSERT + COMMIT per row, WAL + synchronous=FULL (ballot_service/db.py's PRAGMAs)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TABLE casts (id TEXT PRIMARY KEY, serial TEXT UNIQUE, marks TEXT) WITHOUT ROWID")
    t0 = time.perf_counter()
    for _ in range(rows):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO casts VALUES (?, ?, ?)", (os.urandom(16).hex(), os.urandom(16).hex(),
                                                            '{"p00":"for"}'))
        conn.execute("COMMIT")
    rate = rows / (time.perf_counter() - t0)
    conn.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=3000)
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--threads", type=int, default=16, help="gunicorn threads per worker")
    ap.add_argument("--concurrency", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-casts-"))
    url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    print(f"machine: {os.cpu_count()} CPUs; folder {tmp}", flush=True)
    t0 = time.perf_counter()
    env, creds, items = setup(tmp, url, args.members, len(args.workers))
    print(f"set-up: {args.members} members, terminals, check-ins, {len(items)} items "
          f"in {time.perf_counter() - t0:.1f}s", flush=True)
    rate = bare_sqlite(tmp / "bare.sqlite3", args.members)
    print(f"bare SQLite (WAL, synchronous=FULL, 1 INSERT+COMMIT per row): {rate:,.0f} rows/s", flush=True)
    for w, item_id in zip(args.workers, items):
        r = run_one(url, env, creds, item_id, w, args.threads, args.concurrency)
        ok = r["accepted_per_s"] >= 1000 and r["p99_ms"] <= 150
        print(f"workers={r['workers']} threads={r['threads']} concurrency={args.concurrency}: "
              f"{r['accepted']}/{r['casts']} accepted in {r['wall_s']:.2f}s = {r['accepted_per_s']:,.0f} casts/s; "
              f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms; "
              f"other statuses {r['other_statuses']}; targets {'met' if ok else 'MISSED'}", flush=True)


if __name__ == "__main__":
    main()
