"""Ink over a ballot's table header row (序号 / title / 赞成 反对 弃权, or an evaluation's options):
the printed column titles are not marks, but a mark drawn over them is neither a box's mark
nor blank paper, so never guess: the page goes to the tellers with the reason. Every item kind,
real ballots printed by paper.py, rasterised, marked and distorted by omr_synth (200 dpi), and
clean pages of every kind at 150/200/300 dpi read without being sent."""
from __future__ import annotations

from functools import cache

import numpy as np
import omr_synth as S  # noqa: E402  (tests/ is on sys.path under pytest's rootdir conftest)
import pytest

from ballot_service.formats import ballot_layout as bl
from ballot_service.render import paper
from ballot_service.render.fonts import FontNotFound
from ballot_service.scan import omr

KINDS = tuple(S.KINDS)   # livelihood_projects, appointment, resolution, evaluation, election


@pytest.fixture(autouse=True)
def _font():
    try:
        paper.find_font()
    except FontNotFound as exc:
        pytest.skip(exc.message)


@cache
def _page(kind: str, item: int, dpi: int = 200, n: int | None = None):
    """A printed page of `kind` at dpi (the same array for every caller: mark a copy); (page,
    keys, columns, 另选 rows, geometry)."""
    n = n or min(S.KINDS[kind][1][0] + 1, S.KINDS[kind][1][1])
    _, (page,) = S.render_pages(kind, n, 1, dpi, S.fixed_key(), item)
    keys = tuple(f"k{i}" for i in range(n))
    columns = tuple(m for m, _ in S.columns_for(kind, item))
    rows = S.write_in_rows_for(kind, n)
    return page, keys, columns, rows, bl.page_geometry(keys, marks=columns, write_in_rows=rows)


def _read(img, keys, columns, rows):
    return omr.read_page(img, lambda p: keys, marks_for=lambda p: columns, write_ins_for=lambda p: rows)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["first", "last", "title", "no"])
def test_a_mark_over_the_header_row_is_sent_to_the_tellers(kind, where):
    item = KINDS.index(kind) + (2 if where == "last" else 1)    # both evaluation scales
    page, keys, columns, rows, geom = _page(kind, item)
    rng = np.random.default_rng(KINDS.index(kind) * 10 + len(where))
    img = page.copy()
    ppm = 200 / 25.4
    for k in keys:   # every row marked as asked: only the header's ink is in question
        S.draw_mark(img, geom.boxes[(k, columns[0])], "tick", ppm, rng)
    column = {"first": columns[0], "last": columns[-1]}.get(where, where)
    for style in S.STYLES:
        marked = img.copy()
        S.draw_mark(marked, S.header_cell(geom, column), style, ppm, rng)
        r = _read(S.distort(marked, rng), keys, columns, rows)
        assert not r.readable and omr.HEADER_MARK in r.reasons, (kind, where, style, r.reasons)
    r = _read(S.distort(img, rng), keys, columns, rows)
    assert r.readable and r.marks == dict.fromkeys(keys, columns[0]), r.reasons


@pytest.mark.parametrize("kind", KINDS)
def test_a_mark_beside_the_header_row_is_sent(kind):
    page, keys, columns, rows, geom = _page(kind, 3)
    rng = np.random.default_rng(5)
    h, page = geom.header, page.copy()
    S.draw_mark(page, bl.Rect(h.right + 2.0, h.y, 9.0, h.h), "circle", 200 / 25.4, rng)
    r = _read(S.distort(page, rng), keys, columns, rows)
    assert not r.readable and omr.HEADER_MARK in r.reasons, r.reasons


@pytest.mark.parametrize("dpi", [150, 200, 300])
def test_the_printed_header_alone_sends_no_clean_page(dpi):
    """The printed titles in the header (every kind, both evaluation scales, the most and the
    fewest candidates) are not ink over the header: clean pages, upside down too, are read."""
    rng = np.random.default_rng(dpi)
    for kind, (_, (lo, hi)) in S.KINDS.items():
        for item, n in ((1, lo), (2, hi)):
            page, keys, columns, rows, _ = _page(kind, item, dpi, n)
            for upside_down in (False, True):
                r = _read(S.distort(page, rng, upside_down=upside_down, dpi=dpi), keys, columns, rows)
                assert r.readable, (kind, n, dpi, r.reasons)
