"""Check a bundle offline: `verify_bundle` runs the numbered checks in order and returns a
summary, or raises BundleInvalid naming the first check that fails; it never returns False.

    1 manifest     checks_files    every file listed, present and unchanged
    2 keys         checks_files    the public keys, and the auditor's pinned key
    3 event chain  checks_chain    events.jsonl is one unbroken hash chain
    4 checkpoints  checks_chain    signed chain heads that sit on the chain
    5 event log    checks_chain    every close checkpointed; a closed session stays closed
    6 counts       checks_counts   counts.json agrees with the log
    7 ballots      checks_ballots  signatures and binding, unique serials, casts one to one
    8 records      checks_records  signed records, their audit heads and record_issued events
    9 recount      checks_records  every tallied round recounted: the log's and the records' results
   10 scans        scanned_pages   the scanned pages' hashes, sorted, are the log's; with --images,
                                   every exported page image is one of them, unaltered
"""
from __future__ import annotations

from pathlib import Path

from ballot_service.bundle import readers
from ballot_service.bundle.checks_ballots import check_ballots, start_ballot_jobs
from ballot_service.bundle.checks_chain import (
    EventIndex,
    check_checkpoints,
    check_event_chain,
    check_event_log,
)
from ballot_service.bundle.checks_counts import check_counts
from ballot_service.bundle.checks_files import check_keys, check_manifest, parse_key_arg
from ballot_service.bundle.checks_records import check_records, check_recount
from ballot_service.bundle.errors import BundleInvalid, fail
from ballot_service.bundle.scanned_pages import check_images, check_scanned_pages
from ballot_service.numbers import is_int


def verify_bundle(bundle_dir: Path, key=None, images: Path | None = None) -> dict:
    """Check a bundle offline. Returns a summary; raises BundleInvalid at the first failure.
    `key`: public key files or fingerprints the auditor obtained independently (--key).
    `images`: a `scan-images export` folder whose page images are checked against the bundle's
    page hashes (opt-in: only the auditors who may see ballots have one)."""
    b = Path(bundle_dir)
    workers = None
    try:
        if not b.is_dir():
            fail(f"{b} is not a folder", str(b))
        pinned = parse_key_arg(key)
        check_manifest(b)
        keys = check_keys(b, pinned)
        early_counts = readers.peek_counts(b)
        jobs, workers = start_ballot_jobs(b, early_counts, keys) if early_counts else ({}, None)
        chain = check_event_chain(b)
        cps = check_checkpoints(b, keys, chain)
        events = check_event_log(chain, keys, cps)
        citems, item_rules = check_counts(b, events)
        marks_by_round, total_ballots = check_ballots(b, citems, keys, events, jobs)
        signed_records = check_records(b, citems, keys, chain, events)
        rounds_checked = check_recount(citems, item_rules, events, marks_by_round, signed_records)
        pages = check_scanned_pages(b, citems, events.pages, events.scope_sitting)
        seen = check_images(Path(images), pages) if images is not None else {}
        head_seq = len(chain.hashes)
        return {"ok": True, "events": head_seq, "head": chain.hash_at(head_seq), "checkpoints": len(cps),
                "items": len(citems), "rounds_recounted": rounds_checked, "ballots": total_ballots,
                "records": len(signed_records), "keys": dict(keys.fps),
                "events_after_last_checkpoint": head_seq - max((c["seq"] for c in cps), default=0),
                "sessions": _sittings(events), "scanned_pages": len(pages), **seen}
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        # A value of an unexpected shape that no named check caught: still a plain failure.
        raise BundleInvalid(f"the bundle holds data of an unexpected shape ({exc.__class__.__name__}: {exc}): "
                            f"it was damaged or edited") from exc
    finally:
        if workers is not None:
            workers.shutdown(wait=True, cancel_futures=True)


def _sittings(events: EventIndex) -> list[dict]:
    """Each session the log created, and whether (and at which event) it was closed."""
    return [{"id": sid, "name": events.sittings[sid].get("name"), "closed": sid in events.sitting_closed,
             "closed_at_event": events.sitting_closed.get(sid)}
            for sid in sorted(events.sittings, key=lambda x: (0, x, "") if is_int(x) else (1, 0, str(x)))]
