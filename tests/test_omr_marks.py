"""The mark reader on single marks placed where they are hard to read: over a table line, centred
on it, touching a neighbour's mark, an erased mark beside a neighbour's stroke. Each page is a
real printed 32-candidate ballot (5 mm rows, where marks crowd the lines) at 200 dpi, then
skewed, scaled, noised and JPEG-compressed by omr_synth.distort.
"""
from __future__ import annotations

import cv2
import numpy as np
import omr_synth as S  # noqa: E402  (tests/ is on sys.path under pytest's rootdir conftest)
import pytest

from ballot_service.formats import ballot_layout as bl
from ballot_service.render import paper
from ballot_service.render.fonts import FontNotFound
from ballot_service.scan import omr

DPI, N = 200, 32
KEYS = tuple(f"c{i}" for i in range(N))
PPM = DPI / 25.4


@pytest.fixture(scope="module")
def blank():
    try:
        paper.find_font()
    except FontNotFound as exc:
        pytest.skip(exc.message)
    _, pages = S.render_pages("livelihood_projects", N, 1, DPI, S.fixed_key(), 7)
    return pages[0]


def _circle(img, rect: bl.Rect, dy: float, ink: int = 30) -> None:
    cx, cy = rect.center
    cv2.ellipse(img, S._pt(cx, cy + dy, PPM), S._pt(2.6, 1.6, PPM), 0, 0, 360, ink,
                max(1, round(0.45 * PPM)), cv2.LINE_AA, 4)


def _read(img, seed=3):
    r = omr.read_page(S.distort(img, np.random.default_rng(seed), dpi=DPI), lambda p: KEYS)
    return r, {(b.candidate, b.mark): b.state for b in r.boxes}


def test_a_circle_slightly_over_the_line_is_its_box_mark(blank):
    g = bl.page_geometry(KEYS)
    img = blank.copy()
    # centre 1.5 mm low in a 5.2 mm row: the ring crosses the line by ~0.8 mm, short of the core below
    _circle(img, g.boxes[("c10", "for")], 1.5)
    r, states = _read(img)
    assert r.readable, r.reasons
    assert r.marks["c10"] == "for" and r.marks["c11"] is None
    assert states[("c11", "for")] == "empty"


def test_a_circle_centred_on_the_line_is_never_guessed(blank):
    g = bl.page_geometry(KEYS)
    img = blank.copy()
    rect = g.boxes[("c10", "for")]
    _circle(img, rect, rect.h / 2)
    r, states = _read(img)
    assert not r.readable
    assert states[("c10", "for")] != "marked" and states[("c11", "for")] != "marked"


def test_two_circles_touching_across_a_line_are_two_marks(blank):
    g = bl.page_geometry(KEYS)
    img = blank.copy()
    _circle(img, g.boxes[("c10", "for")], 0.9)
    _circle(img, g.boxes[("c11", "for")], -0.9)
    r, _ = _read(img)
    assert r.readable, r.reasons
    assert r.marks["c10"] == "for" and r.marks["c11"] == "for"


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_an_erased_mark_beside_a_neighbours_stroke_is_unclear(blank, seed):
    g = bl.page_geometry(KEYS)
    img = blank.copy()
    rng = np.random.default_rng(seed)
    S.draw_half_erased(img, g.boxes[("c11", "for")], PPM, rng)
    _circle(img, g.boxes[("c10", "for")], 1.2)    # its ring reaches down to the residue
    r, states = _read(img, seed)
    assert not r.readable
    assert states[("c11", "for")] == "unclear"
