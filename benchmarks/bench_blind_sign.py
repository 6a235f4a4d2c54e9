"""Blind-sign 3,000 ballots with one fresh round key (target: 3,000 signed in <= 5 s of CPU).

    python benchmarks/bench_blind_sign.py [--count 3000] [--keygens 5]

One round key is generated (RSA-2048, as crypto.blind_rsa.generate_round_key does for every
round); --count messages are prepared and blinded on the client side in Python (not timed);
then only the server's blind_sign over all of them is timed (its private operation by OpenSSL
where available, else gmpy2; --engine gmpy2 forces the fallback), in CPU seconds of this process
(time.process_time) and wall clock, one signature after another on one core. A sample of the
results is finalized and verified so a broken signer cannot look fast. Key generation is timed
apart (--keygens times; RSA key generation time varies a lot from key to key).
"""
from __future__ import annotations

import argparse
import os
import ssl
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ballot_service.crypto import blind_rsa as br  # noqa: E402
from ballot_service.crypto import openssl_rsa  # noqa: E402

TARGET_CPU_S = 5.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--keygens", type=int, default=5, help="key generations to time (default 5)")
    ap.add_argument("--engine", choices=("auto", "gmpy2"), default="auto",
                    help="the private operation: OpenSSL's where available (auto), or gmpy2's CRT (the fallback)")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.engine == "gmpy2":
        openssl_rsa.raw_private = lambda private, value: None
    print("private operation: " + (f"OpenSSL libcrypto ({ssl.OPENSSL_VERSION}), crypto/openssl_rsa.py"
                                   if args.engine == "auto" and openssl_rsa.available() else "gmpy2 CRT (fallback)"))

    keygen = []
    for _ in range(args.keygens):
        c0, t0 = time.process_time(), time.perf_counter()
        key = br.generate_round_key()
        keygen.append((time.process_time() - c0, time.perf_counter() - t0))
    cpu = [c for c, _ in keygen]
    print(f"round key generation (RSA-{key.key_size}, e=65537), {len(keygen)} keys: median "
          f"{statistics.median(cpu) * 1000:.0f} ms CPU, slowest {max(cpu) * 1000:.0f} ms CPU, "
          f"median {statistics.median(w for _, w in keygen) * 1000:.0f} ms wall")

    pub = key.public_key()
    t0 = time.perf_counter()
    clients = []
    for i in range(args.count):
        prepared = br.prepare(br.ballot_message("bench.r1", os.urandom(16)))
        clients.append((prepared, *br.blind(pub, prepared)))
    print(f"client side (prepare + blind, not part of the target): {args.count:,} in "
          f"{time.perf_counter() - t0:.2f} s wall")

    blinded = [b for _, b, _ in clients]
    c0, t0 = time.process_time(), time.perf_counter()
    sigs = [br.blind_sign(key, b) for b in blinded]
    cpu_s, wall_s = time.process_time() - c0, time.perf_counter() - t0

    # Not timed: a sample finalizes and verifies (finalize raises otherwise).
    for (prepared, _, inv), blind_sig in list(zip(clients, sigs))[:: max(1, args.count // 50)]:
        br.finalize(pub, prepared, blind_sig, inv)

    per = cpu_s / args.count * 1000
    print(f"blind_sign: {args.count:,} in {cpu_s:.2f} s CPU ({per:.2f} ms each, {args.count / cpu_s:,.0f}/s), "
          f"{wall_s:.2f} s wall; sample finalized and verified")
    verdict = "met" if cpu_s <= TARGET_CPU_S * args.count / 3000 else "NOT met"
    print(f"target: 3,000 signed in <= {TARGET_CPU_S:.0f} s of CPU: {verdict} "
          f"({cpu_s * 3000 / args.count:.2f} s CPU per 3,000)")


if __name__ == "__main__":
    main()
