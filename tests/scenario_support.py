"""Reading the shared scenario files (../shared/scenarios) the way the pure-rules tests feed
them to the rules: how many are present, and which submitted ballots are genuine."""
from __future__ import annotations

from pathlib import Path

SCENARIOS = Path(__file__).resolve().parents[2] / "shared" / "scenarios"  # ../shared beside the checkout


def present_count(spec: dict) -> int:
    """A scenario's `present`: a count, or the ids of those present."""
    return spec["count"] if "count" in spec else len(spec["ids"])


def split_ballots(ballots: list[dict]) -> tuple[list[dict], int]:
    """Genuine ballots (expanded by `repeat`) and the count intake would refuse (forged,
    reused and spare ballots)."""
    genuine, refused = [], 0
    for b in ballots:
        n = b.get("repeat", 1)
        if b.get("forged") or b.get("reuse") or b.get("spare"):
            refused += n
        else:
            genuine += [b] * n
    return genuine, refused
