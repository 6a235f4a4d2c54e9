"""CPU time per cast of the secret cast path, in process, by step: what a worker spends before
the write lock (on its event loop: web/cast_on_loop.py) and what its writer thread spends
storing a batch (domain/intake.py, group commit), without HTTP, other processes or a load
generator.

bench_casts.py times the whole path against a real server, but on this shared 2-core machine
its throughput moves by a third within minutes, so a change of 10 % in the server's work
needs many alternated runs to show. The thread CPU time of the same steps over the same
casts moves much less, and says where the time goes:

- step 1 (the loop's part, as web/cast_on_loop.py does it: the JSON body, its first field
  checks, terminal_casts.prepare_known_secret) as a whole, then its parts one at a time, each
  the best of 3 passes over every cast: the JSON body, the ballot's fields, the RSA-PSS check,
  the marks and their digest, the body key's check, the sealed row;
- step 2 (the writer's part): batches stored and committed as the writer thread does it, of
  sizes drawn from 1 to 64 (a seeded draw, the same on both sides of an A/B: the server's
  batches vary with the load, and a statement whose text depends on the size costs more
  than one that does not), or all of one size with --batch; the writer thread's CPU per cast
  (after one warm-up batch, not counted) and each batch's wall time. On PostgreSQL the
  server's own CPU (its backends) is not in these figures.

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
import pstats
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_casts import random_marks, scratch_database, set_round, setup  # noqa: E402

from ballot_service.crypto import tablet  # noqa: E402

WARM_UP = 8  # casts stored first and not counted (the statements' first compiles)


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


def count_stored_alone(group_commit) -> list:
    """A list that grows by one for each job group commit stores alone (its batch failed)."""
    alone, real = [], group_commit.run_batch

    def run_batch(engine, jobs, store, commit, **kw):
        if kw.get("alone"):
            alone.append(1)
        return real(engine, jobs, store, commit, **kw)

    group_commit.run_batch = run_batch
    return alone


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=640)
    ap.add_argument("--database", default=None,
                    help="SQLAlchemy URL of an empty PostgreSQL database (default: a new SQLite file)")
    ap.add_argument("--batch", type=int, default=None,
                    help="every batch this size (default: sizes drawn from 1 to 64, seeded)")
    ap.add_argument("--profile", action="store_true", help="also print cProfile's top functions of each step")
    args = ap.parse_args()
    with scratch_database("bench-cast-cpu-", args.database, f"{args.members} casts") as (tmp, url):
        run(tmp, url, args.members, args.batch, args.profile)


def batch_sizes(n: int, fixed: int | None) -> list[int]:
    """Sizes of the batches that store n casts: all `fixed`, or drawn from 1 to MAX_BATCH."""
    from ballot_service.domain.group_commit import MAX_BATCH

    rng, sizes = random.Random(7), []
    while sum(sizes) < n:
        sizes.append(min(fixed or rng.randint(1, MAX_BATCH), n - sum(sizes)))
    return sizes


def run(tmp: Path, url: str, members: int, fixed_batch: int | None, profile: bool) -> None:
    from ballot_service import create_app
    from ballot_service.crypto import blind_ballots, keys
    from ballot_service.domain import ballot_marks, group_commit, intake, round_facts, terminal_casts
    from ballot_service.web.common import field, parse_json_object

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
    def loop_step(i: int):  # what web/cast_on_loop.py does before queueing the job
        data = parse_json_object(bodies[i])
        field(data, "round_ref", str)
        field(data, "marks", dict)
        return terminal_casts.prepare_known_secret(engine, settings, data)

    step1 = per_cast(loop_step, n)
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
        profiled(lambda: [loop_step(i) for i in range(n)], "step 1")

    jobs = [loop_step(i) for i in range(n)]
    alone = count_stored_alone(group_commit)
    intake._run_batch(engine, jobs[:WARM_UP])
    sizes = batch_sizes(n - WARM_UP, fixed_batch)
    walls, cpu, start = [], 0.0, WARM_UP
    prof = cProfile.Profile() if profile else None
    for size in sizes:
        batch = jobs[start:start + size]
        start += size
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
    if alone:  # a failed batch is stored again cast by cast: the figures would be that path's
        raise SystemExit(f"{len(alone)} casts were stored alone after their batch failed")
    print(f"step 2 (writer thread), {len(sizes)} batches of {min(sizes)}–{max(sizes)} casts "
          f"(mean {statistics.mean(sizes):.1f}): CPU per cast {1000 * cpu / (n - WARM_UP):.3f} ms; "
          f"wall per batch median {statistics.median(walls):.1f} ms, max {max(walls):.1f} ms", flush=True)
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(20)
        print(f"--- cProfile, step 2 (by own time)\n{out.getvalue()}", flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()
