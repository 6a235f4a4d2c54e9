"""What a vote's close commits to instead of one audit event per cast (whose place in the
chain would give the order of arrival): the sorted set of its ballots and of its receipts.
The service computes these at close (domain/voting.py); the bundle verifier recomputes them
from the exported ballots and receipts."""
from __future__ import annotations

from ballot_service.formats.canonical import canonical_json, sha256_hex

RECEIPT_CODE_LEN = 16


def ballots_commitment(rows) -> str:
    """sha256 of the canonical list [[serial, submission digest, member id or null], …] sorted
    by serial. `rows`: (serial, digest, member_id) in any order."""
    return sha256_hex(canonical_json(sorted([s, d, m] for s, d, m in rows)))


def receipts_commitment(receipts) -> str:
    """sha256 of the canonical sorted list of a round's receipts (64 hex digits each)."""
    return sha256_hex(canonical_json(sorted(receipts)))


def receipt_code(receipt: str) -> str:
    """The code shown to the member: the receipt's first 16 hex digits, upper case."""
    return receipt[:RECEIPT_CODE_LEN].upper()
