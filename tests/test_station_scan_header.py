"""A mark drawn over a scanned ballot's header row (over 赞成/反对/弃权, an evaluation's options,
序号 or the title) is queued for the tellers with its reason, for every item kind, through the
station's upload; the same ballot marked only in its boxes is counted."""
from __future__ import annotations

import numpy as np
import pytest
from station_support import mark, paper_item_handed_out, printed_pages, write_tiff

from ballot_service.scan import omr

CANDIDATES = [{"key": "A", "title": "甲一"}, {"key": "B", "title": "乙二"}, {"key": "C", "title": "丙三"}]
KINDS = {  # kind -> what the item carries besides its title
    "livelihood_projects": {"candidates": CANDIDATES, "places": 2},
    "appointment": {"candidates": CANDIDATES},
    "resolution": {},
    "evaluation": {"candidates": CANDIDATES, "options": [{"key": "satisfied", "title": "满意"},
                                                        {"key": "basically_satisfied", "title": "基本满意"},
                                                        {"key": "dissatisfied", "title": "不满意"}]},
    "election": {"candidates": CANDIDATES, "places": 2, "office": "committee_member"},
}


def _paper_item(app, api, kind):
    """An open paper item of `kind` with two ballots handed out: (setup, item, texts, blank pages,
    keys, columns, 另选 rows)."""
    spec = {"key": "k", "kind": kind, "title": "表决事项", "channel": "paper", **KINDS[kind]}
    s, _, texts, layout, keys = paper_item_handed_out(app, api, spec, 2)
    columns = tuple(m for m, _ in layout.marks)
    return s, texts, printed_pages(layout, texts), keys, columns, layout.write_in_lines


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_mark_over_the_header_row_is_queued_with_its_reason(app, api, client, tmp_path, kind):
    s, texts, blank, keys, columns, rows = _paper_item(app, api, kind)
    rng = np.random.default_rng(len(kind))
    marks = {keys[0]: columns[0]}
    over = columns[-1] if kind != "resolution" else "title"
    scans = [mark(blank[0], keys, marks, rng, style="circle", columns=columns, write_in_rows=rows, header=over),
             mark(blank[1], keys, marks, rng, style="circle", columns=columns, write_in_rows=rows)]
    r = client.post("/api/station/scans", data=write_tiff(scans, tmp_path / "p.tif").read_bytes(),
                    headers={"Authorization": f"Bearer {s.counter}", "Content-Type": "image/tiff"})
    pages = r.get_json()["pages"]
    assert [p["status"] for p in pages] == ["queued", "counted"], pages
    assert omr.HEADER_MARK in pages[0]["reasons"], pages[0]
    _, q = api.call("GET", "/api/station/queue", credential=s.counter)
    assert [omr.HEADER_MARK in p["reasons"] for p in q["pages"]] == [True]
