"""Reading SQLite's raw files as someone with a copy of them would (`copy_files`): the main file's pages
(freelist included), the WAL's frames, the -shm file's list of frame pages, and the cells of
b-tree pages with their byte offsets (where in a page SQLite put each row)."""
from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

LEAF_TYPES = (10, 13)  # index leaf (WITHOUT ROWID tables and indexes), table leaf
INTERIOR_TYPES = (2, 5)


def copy_files(db: Path, to: Path) -> tuple[bytes, bytes]:
    """Copy the database and its WAL into the new folder `to` as a file-level copy would take
    them while the server keeps running (as `copy` and `copy-wal`): their bytes (b"": no WAL)."""
    to.mkdir()
    for suffix in ("", "-wal"):
        if Path(f"{db}{suffix}").exists():
            shutil.copyfile(f"{db}{suffix}", to / f"copy{suffix}")
    main = (to / "copy").read_bytes()
    wal = (to / "copy-wal").read_bytes() if (to / "copy-wal").exists() else b""
    return main, wal


def pages(main: bytes) -> list[bytes]:
    size = struct.unpack(">H", main[16:18])[0] or 65536
    return [main[i:i + size] for i in range(0, len(main), size)]


def freelist(main: bytes) -> list[int]:
    """Page numbers (1-based) of every freelist page: trunks and leaves."""
    all_pages = pages(main)
    trunk, out = struct.unpack(">I", main[32:36])[0], []
    while trunk:
        page = all_pages[trunk - 1]
        out.append(trunk)
        n = struct.unpack(">I", page[4:8])[0]
        out += [struct.unpack(">I", page[8 + 4 * i:12 + 4 * i])[0] for i in range(n)]
        trunk = struct.unpack(">I", page[:4])[0]
    return out


def frames(wal: bytes) -> list[tuple[int, bytes]]:
    """The WAL's frames as (page number, page image), in the order they were written."""
    if len(wal) < 32:
        return []
    size = struct.unpack(">I", wal[8:12])[0]
    return [(struct.unpack(">I", wal[i:i + 4])[0], wal[i + 24:i + 24 + size])
            for i in range(32, len(wal) - 24 - size + 1, 24 + size)]


def current_pages(main: bytes, wal: bytes) -> list[tuple[int, bytes]]:
    """(page number, page) of the database as a reader of the copy sees it: the main file's
    pages with the WAL's latest frame of each page in their place."""
    latest = dict(enumerate(pages(main), start=1)) if main else {}
    for pgno, page in frames(wal):
        latest[pgno] = page
    return sorted(latest.items())


def shm_frame_pages(shm: bytes) -> list[int]:
    """The page numbers the wal-index (-shm) lists for frames 1, 2, … of its first block,
    as far as they are set (SQLite zeroes the block when the WAL restarts at frame 1)."""
    if len(shm) < 136:
        return []
    block = shm[136:32768 - 16384]  # the first block's page-number array (4,062 entries)
    out = [struct.unpack("<I", block[i:i + 4])[0] for i in range(0, len(block), 4)]
    while out and out[-1] == 0:
        out.pop()
    return out


def shm_max_frame(shm: bytes) -> int:
    return struct.unpack("<I", shm[16:20])[0] if len(shm) >= 48 else 0


def cells(page: bytes, pgno: int) -> list[tuple[int, bytes]]:
    """A b-tree leaf page's cells as (byte offset in the page, the cell's bytes up to the next
    cell or the page's end); [] for any other page."""
    head = 100 if pgno == 1 else 0
    if len(page) <= head + 8 or page[head] not in LEAF_TYPES:
        return []
    n = struct.unpack(">H", page[head + 3:head + 5])[0]
    offsets = [struct.unpack(">H", page[head + 8 + 2 * i:head + 10 + 2 * i])[0] for i in range(n)]
    if any(o < head + 8 + 2 * n or o >= len(page) for o in offsets):
        return []  # not a page in use (a freed page's bytes)
    ends = sorted(offsets)[1:] + [len(page)]
    span = dict(zip(sorted(offsets), ends))
    return [(o, page[o:span[o]]) for o in offsets]


def placed(page_list: list[tuple[int, bytes]], serials: list[str]) -> list[list[tuple[int, int]]]:
    """Per b-tree leaf page holding serials: [(byte offset, index of the serial in `serials`)]."""
    index = {s.encode(): i for i, s in enumerate(serials)}
    out = []
    for pgno, page in page_list:
        here = []
        for off, cell in cells(page, pgno):
            for s, i in index.items():
                if s in cell:
                    here.append((off, i))
        if here:
            out.append(here)
    return out


def offset_order_agreement(groups: list[list[tuple[int, int]]], rank: list[int]) -> tuple[int, int]:
    """Over pairs of cells on one page whose serials have different `rank` (e.g. the batch they
    arrived in): how many have the later one at the lower offset (SQLite fills a page's cell
    area downwards, so that is insertion order), and how many pairs there are."""
    agree = total = 0
    for group in groups:
        for a in range(len(group)):
            for b in range(a + 1, len(group)):
                (oa, ia), (ob, ib) = group[a], group[b]
                if rank[ia] == rank[ib]:
                    continue
                total += 1
                agree += (oa < ob) == (rank[ia] > rank[ib])
    return agree, total


def db_path(app) -> Path:
    """The app's SQLite database file; the test is skipped on another database."""
    url = app.config["SETTINGS"].database_url
    if not url.startswith("sqlite"):
        pytest.skip("raw database files are inspected on SQLite")
    return Path(url.split("sqlite:///", 1)[1])
