"""Throughput of cast intake over HTTP against a real `ballot-service serve` (SQLite file DB, or
the PostgreSQL database given with --database).

Sets up a congress of 3,000 members, each checked in at a seat terminal, and one
livelihood-projects item per run (20 candidates, 10 places) using the domain functions
directly; then for each run: open the item, start the server (`ballot-service serve`,
granian; its default threads per worker unless --threads), fetch all 3,000 ballots (untimed),
and time 3,000 casts from CONCURRENCY concurrent clients, each with its own keep-alive
connection. Also times a bare durable SQLite insert loop with the same PRAGMAs as
ballot_service/db.py, for comparison, and reports the CPU time per cast of the server's
workers and of the load generator (which runs on the same machine).

A run is short (3,000 casts take 1-2 s) and this shared machine's speed drifts by a fifth from
minute to minute, so each worker count is run --repeat times, alternating, and the summary
gives the median and the worst run.

    python benchmarks/bench_casts.py                 # workers 2 (serve's default) and 3, 3 runs each
    python benchmarks/bench_casts.py --workers 2 --members 3000 --concurrency 200
    python benchmarks/bench_casts.py --client httpx  # the former thread-per-client generator
    python benchmarks/bench_casts.py --database "$(scripts/pg-throwaway start /tmp/pg-bench)"

Targets: >= 1,000 accepted casts/s, p99 <= 150 ms.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers_live import LiveServer, server_env  # noqa: E402

from ballot_service.crypto import tablet  # noqa: E402

PASSPHRASE = "bench-passphrase"
N_CANDIDATES, PLACES = 20, 10


@contextmanager
def scratch_database(prefix: str, database: str | None, what: str):
    """(a new folder, the database URL): `database` (an empty PostgreSQL one) or a new SQLite
    file in the folder; the machine's line is printed first and the folder removed after."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    url = database or f"sqlite:///{tmp / 'bench.sqlite3'}"
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"database {url.split('://')[0]}; {what}", flush=True)
    try:
        yield tmp, url
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def setup(tmp: Path, url: str, members: int, n_items: int):
    from ballot_service.crypto import keys
    from ballot_service.db import make_engine, make_sessionmaker
    from ballot_service.domain import sittings
    from ballot_service.domain.roster import import_roster
    from ballot_service.domain.terminals import register_terminal
    from ballot_service.formats.roster import RosterRow
    from ballot_service.migrate import upgrade

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
    from sqlalchemy import select

    from ballot_service.models import Member

    by_no = {m.member_no: m for m in db.scalars(select(Member).where(Member.body_id == body.id))}
    for no in nos:
        term, cred = register_terminal(db, sitting, f"席位{no}", "seat", seat=no)
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
    from ballot_service.config import Settings
    from ballot_service.db import make_engine, make_sessionmaker
    from ballot_service.domain import voting
    from ballot_service.models import Item

    settings = Settings.from_env({**os.environ, **env})
    engine = make_engine(url)
    db = make_sessionmaker(engine)()
    item = db.get(Item, item_id)
    if action == "open":  # the tablets are simulated: none polls
        voting.open_round(db, settings, item, override_reason="benchmark: simulated tablets")
    else:
        voting.close_round(db, settings, item)
    db.commit()
    db.close()
    engine.dispose()


def random_marks(rng: random.Random) -> dict:
    keys = [f"p{j:02d}" for j in range(N_CANDIDATES)]
    chosen = set(rng.sample(keys, rng.randint(0, PLACES)))
    return {k: ("for" if k in chosen else rng.choice(("against", "abstain"))) for k in keys}


# --- the load generator -------------------------------------------------------------------------
#
# One asyncio loop holding `concurrency` keep-alive HTTP/1.1 connections, one per client; each
# client sends a cast, waits for the whole answer, then sends the next one (a closed loop, no
# think time). It writes ready-made request bytes and parses only the status line and
# Content-Length, so it needs ~0.1 ms of CPU per cast; the previous generator (200 threads each
# with an httpx.Client, kept as --client httpx) needed 1-1.5 ms, on the same two cores as the
# server it measures. Latency is timed from just before the request is written to the last byte
# of the answer.

async def _connect(host: str, port: int):
    return await asyncio.open_connection(host, port)


async def read_answer(reader, with_etag: bool = False) -> tuple:
    """Read one whole HTTP/1.1 answer: (status, server closes the connection, body), and its
    ETag (or None) after them `with_etag`."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, close, etag = 0, False, None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
        elif name == b"etag":
            etag = value.strip().decode("latin-1")
    body = await reader.readexactly(length) if length else b""
    return (status, close, body, etag) if with_etag else (status, close, body)


async def _exchange(reader, writer, request: bytes) -> tuple[int, bool]:
    """Send one request, read the whole answer; (status, server closes the connection)."""
    writer.write(request)
    status, close, _ = await read_answer(reader)
    return status, close


async def _cast_all(host: str, port: int, requests: list[bytes], concurrency: int, started) -> tuple:
    conns = await asyncio.gather(*(_connect(host, port) for _ in range(concurrency)))
    lat: list[float] = []
    statuses: list = []
    todo = iter(requests)

    async def client(reader, writer):
        for request in todo:
            t0 = time.perf_counter()
            try:
                status, close = await _exchange(reader, writer, request)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:  # counted, never hidden
                status, close = f"error:{type(exc).__name__}", True
            lat.append(time.perf_counter() - t0)
            statuses.append(status)
            if close:
                writer.close()
                reader, writer = await _connect(host, port)
        writer.close()

    started()
    t0 = time.perf_counter()
    await asyncio.gather(*(client(r, w) for r, w in conns))
    return lat, statuses, time.perf_counter() - t0


def _cast_body(ballot: dict, marks: dict) -> dict:
    # A secret vote's cast: the blind-signed ballot, its marks and a fresh retry id; no credential.
    return {**ballot, "marks": marks, "retry_id": tablet.new_retry_id(), "receipt_hash": tablet.new_receipt()[1]}


def _cast_request(host: str, port: int, cred: str, ballot: dict, marks: dict) -> bytes:
    body = json.dumps(_cast_body(ballot, marks), separators=(",", ":")).encode()
    return (f"POST /api/terminal/cast HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def _httpx_cast_all(base_url: str, jobs: list, concurrency: int, started) -> tuple:
    """The former generator: `concurrency` threads, each with its own httpx.Client."""
    lat: list[float] = []
    statuses: list = []
    lock = threading.Lock()
    start_gate = threading.Barrier(concurrency + 1)
    it = iter(jobs)
    it_lock = threading.Lock()

    def worker():
        c = httpx.Client(base_url=base_url, timeout=60)
        start_gate.wait()
        while True:
            with it_lock:
                job = next(it, None)
            if job is None:
                break
            cred, ballot, marks = job
            t0 = time.perf_counter()
            try:
                status = c.post("/api/terminal/cast", json=_cast_body(ballot, marks),
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
    started()
    start_gate.wait()
    t0 = time.perf_counter()
    for t in ths:
        t.join()
    return lat, statuses, time.perf_counter() - t0


def _children_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by the server: process `pid` (granian's
    supervisor) and its direct children (the workers), from /proc; 0.0 where /proc is not
    available."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid or entry.parent.name == str(pid):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_one(url: str, env: dict, creds: list[str], item_id: int, workers: int, threads: int | None,
            concurrency: int, client_kind: str = "async") -> dict:
    set_round(url, env, item_id, "open")
    srv = LiveServer.start(env, workers=workers, threads=threads)
    cpu = {}

    def started():
        cpu["server0"], cpu["client0"] = _children_cpu(srv.pid), time.process_time()

    try:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        local = threading.local()

        def client():
            if not hasattr(local, "c"):
                local.c = httpx.Client(base_url=srv.base_url, timeout=60, limits=limits)
            return local.c

        def fetch(cred):
            # Blind issuance (before the casts are timed): announced key, blind, sign, unblind.
            h = {"Authorization": f"Bearer {cred}"}
            vote = client().get("/api/terminal/state", headers=h).raise_for_status().json()["vote"]
            ann = client().get("/api/terminal/round-key", headers=h).raise_for_status().json()
            pub = tablet.round_key_from_announcement(ann, vote["round_ref"], vote["key_fingerprint"])
            pending = tablet.start(pub, vote["round_ref"])
            r = client().post("/api/terminal/blind-sign", headers=h,
                              json={"round_ref": vote["round_ref"], "blinded_msg": pending.blinded_text})
            r.raise_for_status()
            return tablet.finish(pub, pending, r.json()["blind_sig"])

        with ThreadPoolExecutor(32) as ex:
            ballots = list(ex.map(fetch, creds))
        rng = random.Random(item_id)
        jobs = [(cred, b, random_marks(rng)) for cred, b in zip(creds, ballots)]

        # The generator's own full garbage collections (its 3,000 ballots and requests: ~100 ms
        # each) would stop its loop mid-run and be timed as the server's latency.
        gc.collect()
        gc.freeze()
        if client_kind == "httpx":
            lat, statuses, wall = _httpx_cast_all(srv.base_url, jobs, concurrency, started)
        else:
            host, port = "127.0.0.1", srv.port
            requests = [_cast_request(host, port, *job) for job in jobs]
            lat, statuses, wall = asyncio.run(_cast_all(host, port, requests, concurrency, started))
        server_cpu, client_cpu = _children_cpu(srv.pid) - cpu["server0"], time.process_time() - cpu["client0"]
    finally:
        srv.stop()
    set_round(url, env, item_id, "close")
    stored = stored_casts(url, item_id)
    lat.sort()
    accepted = statuses.count(201)
    return {"workers": workers, "threads": threads, "casts": len(statuses), "accepted": accepted, "stored": stored,
            "other_statuses": {s: statuses.count(s) for s in set(statuses) if s != 201},
            "wall_s": wall, "accepted_per_s": accepted / wall,
            "p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))],
            "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))],
            "max_ms": 1000 * lat[-1], "server_cpu_ms": 1000 * server_cpu / len(statuses),
            "client_cpu_ms": 1000 * client_cpu / len(statuses)}


def stored_casts(url: str, item_id: int) -> int:
    """Casts in the database for the item's rounds, counted after the server stopped."""
    from sqlalchemy import create_engine, func, select

    from ballot_service.models import Cast, Round

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Cast).join(Round, Round.id == Cast.round_id)
                               .where(Round.item_id == item_id))
    finally:
        engine.dispose()


def bare_sqlite(path: Path, rows: int) -> float:
    """One INSERT + COMMIT per row, WAL + synchronous=FULL (ballot_service/db.py's PRAGMAs)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA temp_store=MEMORY")
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


def _meets(r: dict) -> bool:
    return r["accepted"] == r["casts"] == r["stored"] and r["accepted_per_s"] >= 1000 and r["p99_ms"] <= 150


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=3000)
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--threads", type=int, default=None,
                    help="server threads per worker (default: ballot-service serve's own default)")
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3, help="runs per worker count (alternating)")
    ap.add_argument("--client", choices=("async", "httpx"), default="async",
                    help="load generator: one asyncio loop (default) or a thread per client with httpx")
    ap.add_argument("--database", default=None,
                    help="SQLAlchemy URL of an empty PostgreSQL database to use (scripts/pg-throwaway "
                         "start prints one); default: a new SQLite file")
    args = ap.parse_args()
    with scratch_database("bench-casts-", args.database, f"{args.members} members") as (tmp, url):
        run_all(tmp, url, args)


def run_all(tmp: Path, url: str, args) -> None:
    """Every planned run (--repeat times each worker count, alternating), then a summary."""
    t0 = time.perf_counter()
    plan = [w for _ in range(args.repeat) for w in args.workers]
    env, creds, items = setup(tmp, url, args.members, len(plan))
    print(f"set-up: {args.members} members, terminals, check-ins, {len(items)} items "
          f"in {time.perf_counter() - t0:.1f}s", flush=True)
    if url.startswith("sqlite"):
        rate = bare_sqlite(tmp / "bare.sqlite3", args.members)
        print(f"bare SQLite (WAL, synchronous=FULL, 1 INSERT+COMMIT per row): {rate:,.0f} rows/s", flush=True)
    results: dict[int, list[dict]] = {}
    for w, item_id in zip(plan, items):
        r = run_one(url, env, creds, item_id, w, args.threads, args.concurrency, args.client)
        ok = _meets(r)
        results.setdefault(w, []).append(r)
        print(f"workers={r['workers']} threads={r['threads'] or 'default'} concurrency={args.concurrency} client={args.client}: "
              f"{r['accepted']}/{r['casts']} accepted ({r['stored']} stored) in {r['wall_s']:.2f}s = {r['accepted_per_s']:,.0f} casts/s; "
              f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms; "
              f"other statuses {r['other_statuses']}; CPU per cast: server {r['server_cpu_ms']:.2f} ms, "
              f"load generator {r['client_cpu_ms']:.2f} ms; targets {'met' if ok else 'MISSED'}", flush=True)
    for w, runs in results.items():
        rates = sorted(r["accepted_per_s"] for r in runs)
        p99s = sorted(r["p99_ms"] for r in runs)
        print(f"summary workers={w}: {len(runs)} runs; casts/s median {statistics.median(rates):,.0f}, "
              f"worst {rates[0]:,.0f}; p99 median {statistics.median(p99s):.0f} ms, worst {p99s[-1]:.0f} ms; "
              f"targets met in {sum(map(_meets, runs))} of {len(runs)} runs", flush=True)
    print(f"(a closed loop: each of the {args.concurrency} clients sends its next cast when its last one is "
          f"answered, so mean latency = {args.concurrency} / throughput, and p99 <= 150 ms needs more than "
          f"{args.concurrency / 0.150:,.0f} casts/s)", flush=True)


if __name__ == "__main__":
    main()
