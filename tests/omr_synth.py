"""Synthetic scanned ballots for the mark reader's tests and benchmark: real ballots printed by
paper.py, rasterised, marked the ways deputies mark them, and distorted like a scanner does.

Everything draws from one numpy Generator, so a seed gives the same set every time.
"""
from __future__ import annotations

import hashlib
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ballot_service.crypto.keys import SigningKey
from ballot_service.formats import ballot_layout as bl
from ballot_service.formats import set_sheet
from ballot_service.formats.ballots import make_token, token_to_text
from ballot_service.render.paper import BallotLayout, write_ballot_pdfs
from ballot_service.render.set_paper import SetSheetLayout

KINDS = {  # item kind -> (title, candidate count range)
    "livelihood_projects": ("2026年示范市民生实事项目人大代表票决", (12, 32)),
    "appointment": ("关于任命市人民政府副市长的决定草案", (2, 8)),
    "resolution": ("关于2025年国民经济和社会发展计划执行情况的决议草案", (1, 1)),
    "evaluation": ("2026年度市人民政府组成部门述职评议", (3, 24)),
    "election": ("示范市人民政府副市长选举", (2, 12)),
}
# an evaluation's option columns, best first (key, title): three or four of them
EVALUATION_SCALES = ((("satisfied", "满意"), ("basically_satisfied", "基本满意"), ("dissatisfied", "不满意")),
                     (("excellent", "优秀"), ("competent", "称职"), ("basically_competent", "基本称职"),
                      ("incompetent", "不称职")))


def columns_for(kind: str, item_id: int) -> tuple[tuple[str, str], ...]:
    """The box columns printed for an item: 赞成/反对/弃权, or an evaluation's options (the
    scale alternating by item, so a seed gives the same set)."""
    if kind == "evaluation":
        return EVALUATION_SCALES[item_id % len(EVALUATION_SCALES)]
    return tuple((m, bl.MARK_LABELS[m]) for m in bl.MARKS)


def places_for(kind: str, n: int) -> int | None:
    """Seats or projects to choose: an election is 差额 (fewer seats than candidates)."""
    if kind == "livelihood_projects":
        return min(n, 15)
    if kind == "election":
        return max(1, n - 1 - n // 4)
    return None


def write_in_rows_for(kind: str, n: int) -> int:
    """An election's 另选 lines under its candidates (left blank in this set)."""
    return bl.write_in_rows_for(places_for(kind, n), n) if kind == "election" else 0
STYLES = ("circle", "tick", "cross", "fill")
UNCLEAR = ("faint_dot", "half_erased", "stray", "two_marks", "header")


@dataclass
class Sheet:
    """One synthetic scanned page and what is really on it."""
    image: np.ndarray
    keys: tuple[str, ...]
    truth: dict = field(default_factory=dict)      # (key, mark) -> True if marked
    unclear: str | None = None                     # the deliberate problem, if any
    unclear_boxes: set = field(default_factory=set)
    note: str = ""
    columns: tuple[str, ...] = bl.MARKS            # the box columns, left to right
    write_in_rows: int = 0                         # an election's blank 另选 lines
    sections: tuple = ()                           # a set sheet: (item, keys, 另选 lines) per election


def fixed_key(name: str = "body-1") -> SigningKey:
    """A signing key made from its name: a synthetic set signed with it is the same every run."""
    return SigningKey(name, Ed25519PrivateKey.from_private_bytes(hashlib.sha256(name.encode()).digest()))


def render_pages(kind: str, n: int, count: int, dpi: int, key, item_id: int) -> tuple[list, list[np.ndarray]]:
    """`count` blank ballots for an item with n candidates at dpi; returns (tokens, grey pages)."""
    title, _ = KINDS[kind]
    lay = BallotLayout(body_name="示范市第十七届人民代表大会", sitting_name="第四次会议", item_title=title,
                       kind=kind, round_number=1, places=places_for(kind, n),
                       candidates=tuple(f"候选{i}：老旧小区改造与加装电梯" for i in range(1, n + 1)),
                       marks=columns_for(kind, item_id), write_in_lines=write_in_rows_for(kind, n))
    # serials from the item and page, so a seed gives the same QR codes (and pages) every run
    tokens = [make_token(key, 1, 1, item_id, 1, serial=hashlib.sha256(f"{item_id}-{i}".encode()).hexdigest()[:32])
              for i in range(count)]
    pairs = [(token_to_text(t), t["payload"]["serial"][:4]) for t in tokens]
    return tokens, print_and_rasterise(lay, pairs, dpi)


def print_and_rasterise(lay: BallotLayout, pairs: list[tuple[str, str]], dpi: int) -> list[np.ndarray]:
    """Print ballots ((qr_text, short serial) pairs) with paper.py and rasterise the PDFs at dpi."""
    with tempfile.TemporaryDirectory() as d:
        paths = write_ballot_pdfs(lay, pairs, Path(d), "synth", processes=1)
        pages = []
        for p in paths:
            doc = pdfium.PdfDocument(str(p))
            for i in range(len(doc)):
                a = doc[i].render(scale=dpi / 72, grayscale=True).to_numpy()
                pages.append(np.ascontiguousarray(a[:, :, 0] if a.ndim == 3 else a))
            doc.close()
    return pages


# --- marks ---------------------------------------------------------------------------------

def _pt(x_mm, y_mm, ppm):
    return int(round(x_mm * ppm * 16)), int(round(y_mm * ppm * 16))   # 4 fractional bits for cv2


def draw_mark(img, rect: bl.Rect, style: str, ppm: float, rng, outside: bool = False) -> None:
    pencil = rng.random() < 0.3
    ink = int(rng.integers(105, 140) if pencil else rng.integers(10, 60))
    thick = max(1, int(round(rng.uniform(0.3, 0.45 if pencil else 0.6) * ppm)))
    cx, cy = rect.center
    rx, ry = min(rect.w * 0.3, rect.h * 0.55), rect.h * 0.32
    if outside:   # a mark drawn partly over the box's edge
        edge = rng.integers(4)
        cx += (-1, 1, 0, 0)[edge] * (rect.w / 2 - rx + rng.uniform(0.6, 1.4))
        cy += (0, 0, -1, 1)[edge] * (rect.h / 2 - ry + rng.uniform(0.5, 1.0))
    cx += rng.uniform(-0.8, 0.8)
    cy += rng.uniform(-0.3, 0.3)
    kw = dict(color=ink, thickness=thick, lineType=cv2.LINE_AA, shift=4)
    if style == "circle":
        cv2.ellipse(img, _pt(cx, cy, ppm), _pt(rx * rng.uniform(0.8, 1), ry * rng.uniform(0.85, 1.05), ppm),
                    rng.uniform(-10, 10), 0, 360, **kw)
    elif style == "tick":
        pts = [(cx - rx * 0.7, cy), (cx - rx * 0.2, cy + ry * 0.9), (cx + rx * 0.8, cy - ry * 1.0)]
        cv2.polylines(img, [np.int32([_pt(x, y, ppm) for x, y in pts])], False, **kw)
    elif style == "cross":
        for sgn in (1, -1):
            cv2.line(img, _pt(cx - rx * 0.7, cy - sgn * ry, ppm), _pt(cx + rx * 0.7, cy + sgn * ry, ppm), **kw)
    else:  # filled in
        pts = [(cx - rx, cy - ry), (cx + rx, cy - ry), (cx + rx, cy + ry), (cx - rx, cy + ry)]
        cv2.fillPoly(img, [np.int32([_pt(x, y, ppm) for x, y in pts])], color=ink, lineType=cv2.LINE_AA, shift=4)


def draw_faint_dot(img, rect, ppm, rng):
    cx, cy = rect.center
    r = rng.uniform(0.35, 0.5)
    cv2.circle(img, _pt(cx + rng.uniform(-4, 4), cy + rng.uniform(-1, 1), ppm), int(r * ppm * 16),
               int(rng.integers(150, 185)), -1, cv2.LINE_AA, 4)


def draw_half_erased(img, rect, ppm, rng):
    """A mark rubbed out: what is left is light grey and broken."""
    layer = np.full_like(img, 255)
    draw_mark(layer, rect, str(rng.choice(STYLES[:3])), ppm, rng)
    residue = layer < 200
    # the eraser leaves blotches: half of the ~1 mm patches rubbed clean
    cell = max(2, int(ppm))
    patches = rng.random((img.shape[0] // cell + 1, img.shape[1] // cell + 1)) < 0.5
    holes = np.kron(patches, np.ones((cell, cell), bool))[:img.shape[0], :img.shape[1]]
    residue &= ~holes
    img[residue] = np.minimum(img[residue], int(rng.integers(170, 190)))


def header_cell(geom: bl.PageGeometry, column: str) -> bl.Rect:
    """The header row's cell above a box column, or above 序号 ("no") or the title ("title")."""
    h = geom.header
    if column == "no":
        return bl.Rect(h.x, h.y, bl.COL_NO, h.h)
    if column == "title":
        return bl.Rect(h.x + bl.COL_NO, h.y, geom.col_title, h.h)
    x = geom.box_x[geom.marks.index(column)]
    return bl.Rect(x, h.y, geom.col_box, h.h)


def draw_stray(img, geom: bl.PageGeometry, ppm, rng):
    """A scribble in the blank paper beside or under the boxes."""
    if rng.random() < 0.5:
        x, y = rng.uniform(193.5, 198.0), rng.uniform(geom.row_y[0] + 2, geom.table_bottom - 6)
    else:
        x, y = rng.uniform(geom.box_x[0] + 4, geom.box_x[-1] - 14), geom.table_bottom + rng.uniform(2, 3.5)
    pts = [(x + t * 1.2, y + math.sin(t * 2.1) * 1.0) for t in np.linspace(0, 3, 12)]
    cv2.polylines(img, [np.int32([_pt(a, b, ppm) for a, b in pts])], False, int(rng.integers(20, 70)),
                  max(1, int(0.4 * ppm)), cv2.LINE_AA, 4)


CHOICE_P = {3: [0.55, 0.2, 0.15, 0.1],          # for / against / abstain (or three options) / left blank
            4: [0.4, 0.25, 0.15, 0.1, 0.1]}


def mark_sheet(page: np.ndarray, keys, dpi: int, rng, unclear: str | None = None,
               columns: tuple[str, ...] = bl.MARKS, write_in_rows: int = 0) -> Sheet:
    """Mark a blank page printed with these box `columns` and `write_in_rows` 另选 lines (left blank)."""
    geom = bl.page_geometry(tuple(keys), marks=columns, write_in_rows=write_in_rows)
    img = page.copy()
    sheet = Sheet(img, tuple(keys), unclear=unclear, columns=tuple(columns), write_in_rows=write_in_rows)
    _mark_table(img, sheet, geom, tuple(keys), tuple(columns), dpi, rng, unclear)
    return sheet


def _mark_table(img, sheet: Sheet, geom: bl.PageGeometry, keys, columns, dpi: int, rng, unclear) -> None:
    ppm = dpi / 25.4
    p = CHOICE_P[len(columns)]
    for k in keys:
        choice = rng.choice(len(p), p=p)
        for m in columns:
            sheet.truth[(k, m)] = False
        if choice < len(columns):
            m = columns[choice]
            sheet.truth[(k, m)] = True
            draw_mark(img, geom.boxes[(k, m)], str(rng.choice(STYLES, p=[0.5, 0.25, 0.15, 0.1])), ppm, rng,
                      outside=rng.random() < 0.08)
    blanks = [b for b, v in sheet.truth.items() if not v and b[0] in keys]
    if unclear in ("faint_dot", "half_erased") and blanks:
        b = blanks[rng.integers(len(blanks))]
        (draw_faint_dot if unclear == "faint_dot" else draw_half_erased)(img, geom.boxes[b], ppm, rng)
        sheet.unclear_boxes.add(b)
    elif unclear == "stray":
        draw_stray(img, geom, ppm, rng)
    elif unclear == "header":   # a mark over the printed column titles (赞成 ..., 序号, the title)
        cells = ("no", "title", *columns)
        draw_mark(img, header_cell(geom, cells[rng.integers(len(cells))]), str(rng.choice(STYLES)), ppm, rng)
    elif unclear == "two_marks":
        k = keys[rng.integers(len(keys))]
        for m in columns[:2]:
            if not sheet.truth[(k, m)]:
                draw_mark(img, geom.boxes[(k, m)], "circle", ppm, rng)
                sheet.truth[(k, m)] = True


# --- a ballot set's sheet (主任, 副主任, 委员 on one page) -------------------------------------

def render_set_pages(count: int, dpi: int, key, item_id: int, rng) -> tuple[tuple, list[np.ndarray]]:
    """`count` blank sheets of a set of three elections (1 of 2, 2 of 3, 2-4 of 4-6 seats), items
    item_id*10+1..3; returns (sections: ((item, keys, 另选 lines), …), grey pages)."""
    n = int(rng.integers(4, 7))
    specs = ((1, 2, "主任"), (2, 3, "副主任"), (n - 2, n, "委员"))
    sections, layouts = [], []
    for j, (places, cands, office) in enumerate(specs, 1):
        lines = bl.write_in_rows_for(places, cands)
        sections.append((item_id * 10 + j, tuple(f"set{item_id}-{j}-{i}" for i in range(cands)), lines))
        layouts.append(BallotLayout(body_name="示范市人民代表大会", sitting_name="第一次会议",
                                    item_title=f"选举示范市人民代表大会常务委员会{office}", kind="election",
                                    round_number=1, places=places, write_in_lines=lines,
                                    candidates=tuple(f"候选人{i}" for i in range(cands))))
    layout = SetSheetLayout("示范市人民代表大会", "第一次会议", "常委会组成人员", (tuple(layouts),))
    texts = [set_sheet.set_text([make_token(key, 1, 1, it, 1, serial=hashlib.sha256(f"{it}-{i}".encode()).hexdigest()[:32])
                                 for it, _, _ in sections]) for i in range(count)]
    return tuple(sections), print_and_rasterise(layout, [(t, "0") for t in texts], dpi)


def mark_set_sheet(page: np.ndarray, sections, dpi: int, rng, unclear: str | None = None) -> Sheet:
    """Mark every section of a set sheet; a deliberate problem, if any, in one of them."""
    geoms = set_sheet.sheet_geometry([(keys, bl.MARKS, lines) for _, keys, lines in sections])
    img = page.copy()
    sheet = Sheet(img, tuple(k for _, keys, _ in sections for k in keys), unclear=unclear, sections=tuple(sections))
    bad = int(rng.integers(len(sections)))
    for j, ((_, keys, _), geom) in enumerate(zip(sections, geoms)):
        _mark_table(img, sheet, geom, keys, bl.MARKS, dpi, rng, unclear if j == bad else None)
    return sheet


# --- the scanner ------------------------------------------------------------------------------

def distort(img: np.ndarray, rng, *, upside_down=False, crease=False, dpi=200) -> np.ndarray:
    h, w = img.shape
    ppm = dpi / 25.4
    if crease:   # a fold across the page: a thin shadow with a light edge beside it
        y = int(rng.uniform(0.35, 0.65) * h)
        img = img.copy()
        img[y:y + max(1, int(0.25 * ppm))] = np.minimum(img[y:y + max(1, int(0.25 * ppm))], 205)
        img[y + max(1, int(0.25 * ppm)):y + max(2, int(0.5 * ppm))] = 255
    # The sheet lies skewed, shifted and (scanner optics) scaled on a bed 12 mm larger each way.
    pad = int(12 * ppm)
    ang = rng.uniform(-3, 3)
    scale = rng.uniform(0.97, 1.03)
    M = cv2.getRotationMatrix2D((w / 2, h / 2), ang, scale)
    M[:, 2] += rng.uniform(-3, 3, 2) * ppm + pad
    out = cv2.warpAffine(img, M, (w + 2 * pad, h + 2 * pad), flags=cv2.INTER_LINEAR,
                         borderValue=int(rng.integers(225, 256)))
    noise = rng.normal(0, rng.uniform(2, 7), out.shape)
    out = np.clip(out.astype(np.float32) * rng.uniform(0.9, 1.0) + noise, 0, 255).astype(np.uint8)
    if upside_down:
        out = np.ascontiguousarray(out[::-1, ::-1])
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 91))])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
