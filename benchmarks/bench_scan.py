"""Pages per second reading 200-dpi greyscale scans of marked ballots (target: >= 10 pages/s).

    python benchmarks/bench_scan.py [--pages 200] [--candidates 20] [--processes 1] [--keep DIR]

Generates the scans first (real ballots printed by paper.py, marked and distorted as in
tests/test_omr.py, saved as PNG files); only the reading is timed: loading each file and
`omr.read_pages` (QR, fiducials, homography, boxes). With --processes N the folder is split
between N processes, as a counting station with N cores could.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
TARGET = 10.0


def _read(args):
    folder, files, keys = args
    from ballot_service.scan import omr

    readable = 0
    for f in files:
        for r in omr.read_pages(Path(folder) / f, lambda payload: keys):
            readable += r.readable
    return len(files), readable


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=None, help="write the scans here and keep them")
    args = ap.parse_args()

    import cv2
    import numpy as np
    import omr_synth as S

    from ballot_service.crypto import keys as keymod

    work = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    out = args.keep or work / "scans"
    out.mkdir(parents=True, exist_ok=True)
    try:
        key = keymod.create_key(work / "keys", "body-1", "bench")
        rng = np.random.default_rng(1)
        ks = tuple(f"p{i}" for i in range(args.candidates))
        t0 = time.perf_counter()
        _, pages = S.render_pages("livelihood_projects", args.candidates, args.pages, 200, key, 1)
        for i, page in enumerate(pages):
            sheet = S.mark_sheet(page, ks, 200, rng)
            cv2.imwrite(str(out / f"scan{i:05d}.png"), S.distort(sheet.image, rng, dpi=200))
        t1 = time.perf_counter()
        files = sorted(p.name for p in out.iterdir())
        procs = max(1, args.processes)
        parts = [(str(out), files[k::procs], ks) for k in range(procs)]
        t2, c2 = time.perf_counter(), time.process_time()
        if procs == 1:
            results = [_read(parts[0])]
        else:
            with ProcessPoolExecutor(max_workers=procs) as pool:
                results = list(pool.map(_read, parts))
        t3, c3 = time.perf_counter(), time.process_time()
        n = sum(r[0] for r in results)
        readable = sum(r[1] for r in results)
        rate = n / (t3 - t2)
        print(f"pages: {n} (200 dpi greyscale PNG, {args.candidates} candidates), CPUs: {os.cpu_count()}, "
              f"processes: {procs}")
        print(f"generate scans:  {t1 - t0:.1f} s (not timed)")
        print(f"read:            {t3 - t2:.2f} s, {(t3 - t2) / n * 1000:.1f} ms per page, {readable} readable")
        if procs == 1:   # CPU time says what the reader costs when the machine is shared (wall time: the load)
            print(f"cpu:             {(c3 - c2) / n * 1000:.1f} ms per page (this process, all its threads)")
        print(f"rate:            {rate:.1f} pages/s (target >= {TARGET:.0f}): "
              f"{'target met' if rate >= TARGET else 'TARGET MISSED'}")
        if args.keep:
            print(f"scans kept in {out}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
