"""CPU time per cast of the secret cast path, in process, by step: what a worker spends before
the write lock (on its event loop: web/cast_on_loop.py) and what its writer thread spends
storing a batch (domain/intake.py, group commit), without HTTP, other processes or a load
generator.

bench_casts.py times the whole path against a real server, but on this shared 2-core machine
its throughput moves by a third within minutes, so a change of 10 % in the server's work
needs many alternated runs to show. The thread CPU time of the same steps over the same
casts moves much less, and says where the time goes:

- step 1 (the loop's part) as a whole, then its parts one at a time, each the best of 3
  passes over every cast: the JSON body, the ballot's fields, the RSA-PSS check, the marks
  and their digest, the sealed row;
- step 2 (the writer's part): batches of BATCH casts stored and committed as the writer
  thread does it; the writer thread's CPU per cast and each batch's wall time.

    python benchmarks/bench_cast_cpu.py                       # SQLite file, 640 deputies
    python benchmarks/bench_cast_cpu.py --database "$url"     # PostgreSQL (scripts/pg-throwaway)
    python benchmarks/bench_cast_cpu.py --profile             # and cProfile's top functions of each step

For an A/B, run each side from its own checkout with PYTHONPATH set to it, alternating.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_casts import random_marks, set_round, setup  # noqa: E402

from ballot_service.crypto import tablet  # noqa: E402

BATCH = 64  # group_commit.MAX_BATCH: the writer's batch when casts queue faster than it stores


def fetch_ballots(app, creds: list[str]) -> list[dict]:
    """Each deputy's ballot, blind-signed through the terminal API as a tablet gets it."""
    client = app.test_client()
    ballots = []
    for cred in creds:
        h = {"Authorization": f"Bearer {cred}"}
        vote = client.get("/api/terminal/state", headers=h).get_json()["vote"]
        ann = client.get("/api/terminal/round-key", headers=h).get_json()
        pub = tablet.round_key_from_announcement(ann, vote["round_ref"], vote["key_fingerprint"])
        pending = tablet.start(pub, vote["round_ref"])
        r = client.post("/api/terminal/blind-sign", headers=h,
                        json={"round_ref": vote["round_ref"], "blinded_msg": pending.blinded_text})
        if r.status_code != 200:
            raise SystemExit(f"blind-sign answered {r.status_code}: {r.get_data(as_text=True)}")
        ballots.append(tablet.finish(pub, pending, r.get_json()["blind_sig"]))
    return ballots


def per_cast(fn, n: int, passes: int = 3) -> float:
    """The best of `passes` thread-CPU times of fn(i) for i < n, per call, in ms."""
    best = float("inf")
    for _ in range(passes):
        t0 = time.thread_time()
        for i in range(n):
            fn(i)
        best = min(best, time.thread_time() - t0)
    return 1000 * best / n


def profiled(fn, label: str) -> None:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(20)
    print(f"--- cProfile, {label} (by own time)\n{out.getvalue()}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=640)
    ap.add_argument("--database", default=None,
                    help="SQLAlchemy URL of an empty PostgreSQL database (default: a new SQLite file)")
    ap.add_argument("--profile", action="store_true", help="also print cProfile's top functions of each step")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-cast-cpu-"))
    url = args.database or f"sqlite:///{tmp / 'bench.sqlite3'}"
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"database {url.split('://')[0]}; {args.members} casts", flush=True)
    try:
        run(tmp, url, args.members, args.profile)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: Path, url: str, members: int, profile: bool) -> None:
    from ballot_service import create_app
    from ballot_service.crypto import blind_ballots, keys
    from ballot_service.domain import ballot_marks, intake, round_facts, terminal_casts
    from ballot_service.web.common import parse_json_object

    env, creds, items = setup(tmp, url, members, 1)
    set_round(url, env, items[0], "open")
    app = create_app(env)
    engine, settings = app.extensions["ballot_engine"], app.config["SETTINGS"]
    rng = random.Random(1)
    bodies = [json.dumps({**b, "marks": random_marks(rng), "retry_id": tablet.new_retry_id()}).encode()
              for b in fetch_ballots(app, creds)]
    datas = [json.loads(b) for b in bodies]
    n = len(datas)

    jobs = [terminal_casts.prepare_known_secret(engine, settings, d) for d in datas]  # warm: the round known
    if any(j is None or j.refusal is not None or j.staged is None for j in jobs):
        raise SystemExit("a cast did not take the loop's path (round not known, or refused)")
    rk = round_facts.known_round_key(engine, blind_ballots.round_id_of(datas[0]["round_ref"]))
    facts = round_facts.known(engine, jobs[0].key)
    ballots = [blind_ballots.parse(d) for d in datas]
    step1 = per_cast(lambda i: terminal_casts.prepare_known_secret(engine, settings, datas[i]), n)
    parts = {
        "JSON body": lambda i: parse_json_object(bodies[i]),
        "ballot fields": lambda i: blind_ballots.parse(datas[i]),
        "RSA-PSS check": lambda i: round_facts.signature_refusal(rk, ballots[i]),
        "marks and digest": lambda i: ballot_marks.marks_outcome(datas[i]["marks"], facts, jobs[i].token_text,
                                                                 "terminal"),
        "body key check": lambda i: keys.checked_body_signing_key(settings, rk.body_id),
        "sealed row": lambda i: intake.preseal(jobs[i], facts),
    }
    print(f"step 1 (event loop), CPU per cast: {step1:.3f} ms", flush=True)
    for name, fn in parts.items():
        print(f"  {name:18s} {per_cast(fn, n):.3f} ms", flush=True)
    if profile:
        profiled(lambda: [terminal_casts.prepare_known_secret(engine, settings, d) for d in datas], "step 1")

    jobs = [terminal_casts.prepare_known_secret(engine, settings, d) for d in datas]
    walls, cpu = [], 0.0
    prof = cProfile.Profile() if profile else None
    for start in range(0, n, BATCH):
        batch = jobs[start:start + BATCH]
        t0, w0 = time.thread_time(), time.perf_counter()
        if prof:
            prof.enable()
        intake._run_batch(engine, batch)
        if prof:
            prof.disable()
        cpu += time.thread_time() - t0
        walls.append(1000 * (time.perf_counter() - w0))
    stored = [intake.stored_outcome(j) for j in jobs]  # raises a job's error, if any
    if any(r.repeated for r in stored):
        raise SystemExit("a cast was taken for a repeat")
    print(f"step 2 (writer thread), batches of {BATCH}: CPU per cast {1000 * cpu / n:.3f} ms; "
          f"wall per batch median {statistics.median(walls):.1f} ms, max {max(walls):.1f} ms", flush=True)
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(20)
        print(f"--- cProfile, step 2 (by own time)\n{out.getvalue()}", flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()
