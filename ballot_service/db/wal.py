"""What SQLite's files keep of a secret vote's order, and the two steps that take it away after the close.

- The WAL holds one frame per changed page per commit, in commit order, until a checkpoint;
  diffing successive frames orders the commits. `checkpoint_wal_after_commit` truncates it
  after a paper hand-out and after the close. During a vote it is not truncated after each
  cast batch or blind signature (measured: that halved casts/s), so a mid-vote copy keeps the
  order of the batches (README, "Database copies").
- Inside a b-tree page SQLite places each new row's cell below the ones already there, so
  the byte offsets of the rows on one page keep their insertion order until the page is
  rebuilt, whatever the key. So a secret round's casts are stored sealed while it is open
  (domain/cast_staging.py: the frames and offsets then order ciphertexts that say nothing
  without the body's key), and at the close written in clear sorted by their random ids
  (secure_delete zeroes the sealed cells), so their offsets follow their keys.
"""
from __future__ import annotations

import sqlite3

CHECKPOINT_WAIT_MS = 3000  # how long a checkpoint waits for readers before leaving the WAL for later


def truncate_wal(conn: sqlite3.Connection, restore_busy_ms: int) -> None:
    """PRAGMA wal_checkpoint(TRUNCATE) on `conn` (no transaction open), right after a paper hand-out's
    or a close's commit and before the connection leaves the server's writer queue (db/__init__.py,
    checkpoint_wal_after_commit), so no other commit lands in the WAL in between. The WAL is
    copied into the main file and truncated to zero bytes; with secure_delete the main file
    keeps only current pages. Best effort: a reader still inside an old snapshot after
    CHECKPOINT_WAIT_MS leaves the WAL as it is (the next hand-out or close truncates it). The commit
    itself has succeeded, so a failed checkpoint is not an error of the request.
    `restore_busy_ms`: the connection's usual busy timeout."""
    try:
        conn.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.execute(f"PRAGMA busy_timeout={restore_busy_ms}")
    except sqlite3.Error:
        pass
