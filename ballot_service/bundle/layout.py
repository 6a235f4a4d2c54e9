"""The bundle's file and folder names, format tags and the fields each file holds: the one
place that says where things are, so that export and verify cannot drift apart."""
from __future__ import annotations

from ballot_service.crypto.keys import PUBLIC_SUFFIX

# /2: one body's chain per bundle (counts.json names its scope), batch counts instead of one
# event per cast, receipts apart from ballots.
BUNDLE_FORMAT = "ballot-audit-bundle/2"
COUNTS_FORMAT = "ballot-audit-counts/2"

MANIFEST = "manifest.json"
README = "README.md"
EVENTS = "events.jsonl"
CHECKPOINTS = "checkpoints.json"
COUNTS = "counts.json"
BALLOTS_DIR = "ballots"
RECEIPTS_DIR = "receipts"  # each round's receipts, sorted, one per line, apart from its ballots
RECORDS_DIR = "records"
KEYS_DIR = "keys"
ROUND_KEYS_DIR = "round_keys"  # each terminal round's announced RSA public key, <round_ref>.pem
FINGERPRINTS = f"{KEYS_DIR}/fingerprints.json"
SCANNED_PAGES = "scanned_pages.json"  # the scanned pages' SHA-256, sorted (bundle/scanned_pages.py)
SCANNED_PAGES_FORMAT = "ballot-scanned-pages/1"

# The template of README, shipped as package data next to this module.
README_TEMPLATE = "README.bundle.md"

EVENT_FIELDS = ("at", "data", "hash", "kind", "prev_hash", "seq")
CHECKPOINT_FIELDS = {"seq", "head_hash", "reason", "signature", "key_fingerprint"}
ROUND_FIELDS = {"number", "round_id", "status", "candidates", "places", "members", "present", "quorum_met",
                "issued", "returned", "refused", "ballots_file", "sheet", "round_ref", "round_key_file",
                "replacements", "receipts_file", "stage"}
ITEM_FIELDS = {"id", "key", "kind", "title", "secret", "channel", "places", "rule", "body", "session",
               "rounds", "record_file", "election"}
RECORD_FIELDS = {"record_id", "signed", "signature", "key_fingerprint"}


def ballots_file(stem: str, round_no: int) -> str:
    return f"{BALLOTS_DIR}/{stem}-r{round_no}.jsonl"


def receipts_file(stem: str, round_no: int) -> str:
    return f"{RECEIPTS_DIR}/{stem}-r{round_no}.txt"


def record_file(stem: str) -> str:
    return f"{RECORDS_DIR}/{stem}.json"


def round_key_file(round_ref: str) -> str:
    return f"{ROUND_KEYS_DIR}/{round_ref}.pem"


def key_file(name: str) -> str:
    return f"{KEYS_DIR}/{name}{PUBLIC_SUFFIX}"
