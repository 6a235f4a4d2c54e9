"""The mark reader on synthetic scans made here (fixed seed): real ballots printed by paper.py for
every item kind (an evaluation with its three or four option columns, an election with its 另选
lines left blank, a ballot set's sheet of three elections), rasterised at 150/200/300 dpi, marked as deputies mark them (○ √ × filled, pen
and pencil, some over the box's edge), then skewed, shifted, scaled, noised and JPEG-compressed;
one page upside down and one creased in each batch.

Asserts: no box misread on a page read as readable; at most 2 % of clearly marked pages sent to
adjudication; every deliberately unclear page (faint dot, half-erased mark, stray scribble,
two marks for one candidate, a mark over the table's header row) sent. The default set is small; `-m slow` (or OMR_FULL=1) runs
the full set of >= 10,000 boxes and prints its figures.
"""
from __future__ import annotations

import os
from collections import Counter

import cv2
import numpy as np
import omr_synth as S  # noqa: E402  (tests/ is on sys.path under pytest's rootdir conftest)
import pytest
import qrcode
import zxingcpp  # noqa: E402,F401  (a dependency: never skip the reader silently)
from PIL import Image

from ballot_service.formats import ballot_layout as bl  # noqa: E402
from ballot_service.formats.ballots import make_token, token_to_text  # noqa: E402
from ballot_service.render import paper  # noqa: E402
from ballot_service.render.fonts import FontNotFound  # noqa: E402
from ballot_service.scan import omr  # noqa: E402

SEED = 20261202


def _need_font():
    try:
        paper.find_font()
    except FontNotFound as exc:
        pytest.skip(exc.message)


@pytest.fixture(scope="module")
def key():
    return S.fixed_key()


def make_set(key, pages_per_batch: int, batches_per_kind: int, seed: int = SEED):
    """Yield (sheet, image) over every kind x dpi; each batch has one page upside down, one
    creased, and every fifth page deliberately unclear."""
    rng = np.random.default_rng(seed)
    item = 0
    for rep in range(batches_per_kind):
        for kind, (_, (lo, hi)) in S.KINDS.items():
            for dpi in (150, 200, 300):
                item += 1
                n = int(rng.integers(lo, hi + 1))
                _, pages = S.render_pages(kind, n, pages_per_batch, dpi, key, item)
                ks = tuple(f"{kind[:3]}{item}-{i}" for i in range(n))
                columns = tuple(m for m, _ in S.columns_for(kind, item))
                for i, page in enumerate(pages):
                    unclear = S.UNCLEAR[(i // 5 + rep) % len(S.UNCLEAR)] if i % 5 == 4 else None
                    sheet = S.mark_sheet(page, ks, dpi, rng, unclear=unclear, columns=columns,
                                         write_in_rows=S.write_in_rows_for(kind, n))
                    img = S.distort(sheet.image, rng, upside_down=(i == 1), crease=(i == 2), dpi=dpi)
                    sheet.note = f"{kind} n={n} dpi={dpi} page={i}"
                    yield sheet, img
    # ballot sets' sheets (主任, 副主任, 委员 on one page), from a generator of their own so the
    # pages above stay the same as before they were added
    rng = np.random.default_rng(seed + 1)
    for rep in range(batches_per_kind):
        for dpi in (150, 200, 300):
            item += 1
            sections, pages = S.render_set_pages(pages_per_batch, dpi, key, item, rng)
            for i, page in enumerate(pages):
                unclear = S.UNCLEAR[(i // 5 + rep) % len(S.UNCLEAR)] if i % 5 == 4 else None
                sheet = S.mark_set_sheet(page, sections, dpi, rng, unclear=unclear)
                img = S.distort(sheet.image, rng, upside_down=(i == 1), crease=(i == 2), dpi=dpi)
                sheet.note = f"set n={len(sheet.keys)} dpi={dpi} page={i}"
                yield sheet, img


def read(sheet, img):
    """The reader on one synthetic page; a set sheet's sections joined into one reading (readable
    only if every section is)."""
    if not sheet.sections:
        return omr.read_page(img, lambda payload, ks=sheet.keys: ks, marks_for=lambda payload, c=sheet.columns: c,
                             write_ins_for=lambda payload, w=sheet.write_in_rows: w)
    by_item = {it: (keys, lines) for it, keys, lines in sheet.sections}
    r = omr.read_page(img, lambda p: by_item.get(p["item"], (None,))[0], write_ins_for=lambda p: by_item[p["item"]][1])
    whole = omr.PageReading(r.source, r.page, r.status, list(r.reasons))
    for part in r.sections:
        whole.boxes += part.boxes
        whole.reasons += [x for x in part.reasons if x not in whole.reasons]
        whole.marks.update(part.marks)
    if len(r.sections) != len(sheet.sections) or whole.reasons:
        whole.status, whole.marks = "adjudicate", {}
    return whole


def evaluate(key, pages_per_batch, batches_per_kind):
    stats = dict(pages=0, boxes=0, clear=0, clear_sent=0, misread=0, wrong_any=0, unclear=0, unclear_sent=0)
    problems = []
    cases = Counter()   # where the pages fall, by dpi and deliberate problem (printed)
    for sheet, img in make_set(key, pages_per_batch, batches_per_kind):
        r = read(sheet, img)
        stats["pages"] += 1
        dpi = sheet.note.split()[2]
        cases[(sheet.unclear or "clear", dpi, "read" if r.readable else "sent")] += 1
        stats["boxes"] += len(sheet.truth)
        for b in r.boxes:
            truth = sheet.truth[(b.candidate, b.mark)]
            if b.state != "unclear" and (b.state == "marked") != truth and (b.candidate, b.mark) not in sheet.unclear_boxes:
                stats["wrong_any"] += 1          # wrong box, page may still be sent to people
                if r.readable:
                    stats["misread"] += 1
                    problems.append(f"MISREAD {sheet.note} {b}")
        if sheet.unclear:
            stats["unclear"] += 1
            stats["unclear_sent"] += not r.readable
            if r.readable:
                problems.append(f"NOT SENT {sheet.unclear} {sheet.note}")
        else:
            stats["clear"] += 1
            if not r.readable:
                stats["clear_sent"] += 1
                problems.append(f"sent {sheet.note}: {r.reasons} "
                                f"{[(b.candidate, b.mark, b.ink_mm2, b.dark_mm2, b.ring_mm2) for b in r.boxes if b.state == 'unclear']}")
            elif r.marks != {k: next((m for m in sheet.columns if sheet.truth[(k, m)]), None) for k in sheet.keys}:
                stats["misread"] += 1
                problems.append(f"MARKS WRONG {sheet.note}")
    stats["cases"] = dict(sorted(cases.items()))
    return stats, problems


def _check(stats, problems):
    rate = stats["clear_sent"] / max(1, stats["clear"])
    cases = stats.pop("cases", {})
    print(f"\nOMR set: {stats}; clear pages sent to adjudication {rate:.2%}")
    for case, n in cases.items():
        print("  ", *case, n)
    for p in problems[:20]:
        print(" ", p)
    assert stats["misread"] == 0, problems
    assert stats["unclear_sent"] == stats["unclear"], problems
    assert rate <= 0.02, problems


def test_reads_synthetic_set(key):
    _need_font()
    _check(*evaluate(key, pages_per_batch=10, batches_per_kind=1))


@pytest.mark.slow
def test_reads_full_set(key, request):
    expr = request.config.getoption("markexpr") or ""
    if not os.environ.get("OMR_FULL") and not ("slow" in expr and "not slow" not in expr):
        pytest.skip("full set (>= 10,000 boxes, a few minutes): run with -m slow or OMR_FULL=1")
    _need_font()
    stats, problems = evaluate(key, pages_per_batch=30, batches_per_kind=2)
    assert stats["boxes"] >= 10_000, stats
    _check(stats, problems)


def test_not_a_ballot_and_blank_page():
    blank = np.full((2339, 1654), 250, np.uint8)
    assert omr.read_page(blank, lambda p: ("a",)).reasons == [omr.UNREADABLE_QR]
    q = np.array(qrcode.make("https://example.org/not-a-ballot").convert("L"))
    blank[1900:1900 + q.shape[0], 150:150 + q.shape[1]] = q
    assert omr.read_page(blank, lambda p: ("a",)).reasons == [omr.NOT_A_BALLOT]


def test_unknown_item_and_read_pages_from_files(key, tmp_path):
    _need_font()
    rng = np.random.default_rng(7)
    _, pages = S.render_pages("appointment", 3, 2, 200, key, 99)
    ks = ("x", "y", "z")
    sheets = [S.mark_sheet(p, ks, 200, rng) for p in pages]
    imgs = [S.distort(s.image, rng, dpi=200) for s in sheets]
    cv2.imwrite(str(tmp_path / "p1.png"), imgs[0])
    cv2.imwrite(str(tmp_path / "p2.jpg"), cv2.cvtColor(imgs[1], cv2.COLOR_GRAY2BGR))   # colour scan
    Image.fromarray(imgs[0]).save(tmp_path / "multi.tif", save_all=True, append_images=[Image.fromarray(imgs[1])])
    readings = list(omr.read_pages(tmp_path, lambda p: ks if p["item"] == 99 else None))
    assert [(r.source, r.page) for r in readings] == [("multi.tif", 1), ("multi.tif", 2), ("p1.png", 1), ("p2.jpg", 1)]
    assert all(r.readable for r in readings), [r.reasons for r in readings]
    assert readings[2].marks == readings[0].marks
    assert readings[0].layout_version == 1 and readings[0].payload["item"] == 99
    assert list(omr.read_pages(tmp_path / "p1.png", lambda p: None))[0].reasons == [omr.UNKNOWN_LAYOUT]


def test_reads_a_printed_pdf(key, tmp_path):
    """The PDF path (pypdfium2): an unmarked printed ballot reads as all empty."""
    _need_font()
    lay = paper.BallotLayout(body_name="示范市人民代表大会常务委员会", sitting_name="第三十次会议",
                             item_title="决议草案", kind="resolution", round_number=1, candidates=("决议草案",))
    t = make_token(key, 1, 1, 5, 1)
    paths = paper.write_ballot_pdfs(lay, [(token_to_text(t), "0000 0000")], tmp_path, "r", processes=1)
    (r,) = list(omr.read_pages(paths[0], lambda p: ("motion",), dpi=150))
    assert r.readable and r.marks == {"motion": None} and not r.rotated
    assert {b.state for b in r.boxes} == {"empty"}


def test_geometry_is_what_paper_draws():
    g = bl.page_geometry(("a", "b"))
    assert set(g.boxes) == {(k, m) for k in "ab" for m in bl.MARKS}
    assert g.boxes[("a", "for")].right == g.boxes[("a", "against")].x
    assert g.fiducials[0] == (bl.FIDUCIAL_INSET, bl.FIDUCIAL_INSET)
    assert g.table_bottom < g.qr.y
    assert bl.layout_version_for({"v": 1}) == 1 and bl.layout_version_for({"v": 2}) is None
    assert bl.page_geometry(32).table_bottom <= bl.page_geometry(32).qr.y - 8
    with pytest.raises(ValueError):
        bl.page_geometry(bl.MAX_ROWS + 1)


@pytest.mark.parametrize("where", ["beside", "under"])
def test_a_stray_mark_beside_or_under_the_write_in_lines_is_sent(key, where):
    """An election's watch ends at its last candidate's row (the 另选 lines' columns hold printed
    words): a scribble in the blank paper beside those lines or under the table is still seen."""
    _need_font()
    n = 3
    rows = S.write_in_rows_for("election", n)
    _, (page,) = S.render_pages("election", n, 1, 200, key, 99)
    ks = tuple(f"ele-{i}" for i in range(n))
    geom = bl.page_geometry(ks, write_in_rows=rows)
    read = lambda img: omr.read_page(img, lambda p: ks, write_ins_for=lambda p: rows)  # noqa: E731
    assert rows and read(page.copy()).readable
    img, ppm = page.copy(), 200 / 25.4
    x, y = (194.0, geom.row_y[n] + 2.0) if where == "beside" else (geom.box_x[0] + 8, geom.table_bottom + 2.5)
    cv2.polylines(img, [np.int32([S._pt(x + t * 1.2, y + np.sin(t * 2.1), ppm) for t in np.linspace(0, 3, 12)])],
                  False, 40, max(1, int(0.4 * ppm)), cv2.LINE_AA, 4)
    r = read(img)
    assert not r.readable and omr.STRAY_MARK in r.reasons, r.reasons
