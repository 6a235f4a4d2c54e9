"""Issue #19: an evaluation on paper — a column per option (best first) on the printed ballot,
the same geometry for the mark reader, which reads one option per subject, sends a subject
with two options to people (void by RULES.md §5.5 once they agree). The reader must be told
the item's options (marks_for), as it is told its candidates: the payload does not carry them."""
from __future__ import annotations

import numpy as np
import pypdfium2 as pdfium
import pytest
from omr_synth import draw_mark

from ballot_service.crypto import keys
from ballot_service.formats import ballot_layout as bl
from ballot_service.formats.ballots import make_token, token_to_text
from ballot_service.render import paper
from ballot_service.render.fonts import FontNotFound
from ballot_service.scan import omr

OPTIONS = (("excellent", "优秀"), ("competent", "称职"), ("basically_competent", "基本称职"), ("incompetent", "不称职"))
SUBJECTS = ("S1", "S2", "S3")


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    try:
        paper.find_font()
    except FontNotFound as exc:
        pytest.skip(exc.message)
    keys.clear_cache()
    key = keys.create_key(tmp_path_factory.mktemp("keys"), "body-1", "pw")
    lay = paper.BallotLayout(body_name="示范市人民代表大会常务委员会", sitting_name="第三十次会议",
                             item_title="2026年度述职评议", kind="evaluation", round_number=1,
                             candidates=("公安局局长", "民政局局长", "教育局局长"), marks=OPTIONS)
    t = make_token(key, 1, 1, 7, 1)
    out = tmp_path_factory.mktemp("pdf")
    (path,) = paper.write_ballot_pdfs(lay, [(token_to_text(t), "0000 0000")], out, "e", processes=1)
    doc = pdfium.PdfDocument(str(path))
    a = doc[0].render(scale=200 / 72, grayscale=True).to_numpy()
    doc.close()
    text = lay.instructions()[0]
    return np.ascontiguousarray(a[:, :, 0] if a.ndim == 3 else a), text


def _read(img, marks_for=lambda p: [k for k, _ in OPTIONS]):
    return omr.read_page(img, lambda p: SUBJECTS, marks_for=marks_for)


def test_the_ballot_has_a_column_per_option_and_says_so(printed):
    _, text = printed
    assert "“优秀”“称职”“基本称职”“不称职”中任选一项" in text
    g = bl.page_geometry(SUBJECTS, marks=[k for k, _ in OPTIONS])
    assert len(g.box_x) == 5 and set(g.boxes) == {(s, k) for s in SUBJECTS for k, _ in OPTIONS}
    assert g.boxes[("S1", "excellent")].right == g.boxes[("S1", "competent")].x
    with pytest.raises(ValueError):
        bl.page_geometry(SUBJECTS, marks=["a"] * 3)


def test_the_reader_reads_one_option_per_subject(printed):
    img, _ = printed
    blank = _read(img.copy())
    assert blank.readable and blank.marks == {"S1": None, "S2": None, "S3": None}
    marked = img.copy()
    g = bl.page_geometry(SUBJECTS, marks=[k for k, _ in OPTIONS])
    rng = np.random.default_rng(7)
    ppm = 200 / 25.4
    for subject, option in (("S1", "excellent"), ("S2", "basically_competent"), ("S3", "incompetent")):
        draw_mark(marked, g.boxes[(subject, option)], "circle", ppm, rng)
    r = _read(marked)
    assert r.readable, r.reasons
    assert r.marks == {"S1": "excellent", "S2": "basically_competent", "S3": "incompetent"}
    draw_mark(marked, g.boxes[("S1", "competent")], "cross", ppm, rng)
    twice = _read(marked)
    assert not twice.readable and omr.TWO_MARKS in twice.reasons
