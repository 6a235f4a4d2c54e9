"""Print-ready A4 PDFs of paper ballots (one ballot per page) with a QR code per ballot.

The QR code carries the ballot's text form (`ballots.token_to_text`). A named vote's ballot
also prints the first 8 hex digits of the serial for people ("票号 ab12 cd34"); a secret
one does not, so a desk cannot note a serial beside a name (the QR is enough). Nothing on a
ballot identifies a member.

Machine-readable: the table, the QR square and four solid corner squares (fiducials) are
drawn from `ballot_layout.page_geometry`, the geometry the mark reader (`omr.py`) uses, and
the layout version is printed beside the serial ("版式 L1").

Font: fpdf2 embeds a subset of a Chinese TrueType font. The first that exists of
$BALLOT_FONT, ballot_service/fonts/*.tt[fc], and the Debian fonts listed in FONT_CANDIDATES
is used (Debian/Ubuntu: `apt-get install fonts-wqy-zenhei`).

Speed: the QR module matrix is drawn as filled rectangles written straight into the page's
content stream (one `re` per horizontal run of dark modules, one fill), and large runs are
split into files of at most 500 pages rendered in parallel processes.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from fpdf import FPDF

from ballot_service.errors import InvalidInput
from ballot_service.formats import ballot_layout as bl
from ballot_service.formats.ballots import serial_short, token_to_text
from ballot_service.render import qr
from ballot_service.render.fonts import FONT, a4_pdf, find_font
from ballot_service.vocab import BALLOT_HEADINGS, ElectionStage, ItemKind

PAGES_PER_FILE = 500
MAX_CANDIDATES_PER_PAGE = 32



@dataclass(frozen=True)
class BallotLayout:
    """Everything printed on every ballot of a batch (all but the QR code and serial)."""

    body_name: str
    sitting_name: str
    item_title: str
    kind: str
    round_number: int
    candidates: tuple[str, ...]
    places: int | None = None
    key_fingerprint: str | None = None
    extra_notes: tuple[str, ...] = field(default=())
    # A secret ballot prints no human-readable serial: a desk could note it beside a name.
    secret: bool = True
    # the box columns: 赞成/反对/弃权, or an evaluation's options best first (key, title)
    marks: tuple[tuple[str, str], ...] = tuple((m, bl.MARK_LABELS[m]) for m in bl.MARKS)
    write_in_lines: int = 0  # elections: blank 另选他人 lines under the candidates (tellers transcribe them)

    @classmethod
    def from_item(cls, item, round_, key_fingerprint: str | None = None) -> "BallotLayout":
        titles = {c.key: c.label for c in item.candidates}
        keys = list(round_.candidate_keys or [c.key for c in item.candidates])
        places = round_.places if round_.places is not None else item.places
        marks = {"marks": tuple((o["key"], o["title"]) for o in item.options)} \
            if item.kind == ItemKind.EVALUATION and item.options else {}
        writes_in = item.kind == ItemKind.ELECTION and round_.stage in (ElectionStage.FIRST, ElectionStage.ANOTHER)
        written = places if writes_in else 0
        return cls(body_name=item.sitting.body.name, sitting_name=item.sitting.name, item_title=item.title,
                   kind=item.kind, round_number=round_.number, candidates=tuple(titles.get(k, k) for k in keys),
                   places=places, key_fingerprint=key_fingerprint, secret=bool(item.secret),
                   write_in_lines=bl.write_in_rows_for(written, len(keys)), **marks)

    def heading(self) -> str:
        return f"{self.body_name}{self.sitting_name}"

    def renderer(self, font_path: Path) -> "_Renderer":
        """What draws this batch's pages (a ballot set's sheet has its own: set_paper.py)."""
        return _Renderer(self, font_path)

    def ballot_label(self) -> str:
        label = BALLOT_HEADINGS.get(self.kind, ("表 决 票", "项目"))[0]
        if self.round_number > 1:
            label += f"（第{self.round_number}轮 · 再次投票）"
        return label

    def column_label(self) -> str:
        return BALLOT_HEADINGS.get(self.kind, ("", "项目"))[1]

    def instructions(self) -> list[str]:
        choices = "“" + "”“".join(t for _, t in self.marks) + "”"
        lines = [f"在{choices}中任选一项划“○”，不划的视为弃权，多划或无法辨认的该项无效。"]
        if self.kind == ItemKind.ELECTION and self.places:
            lines.append(f"另选他人的，在另选栏写上其姓名即为赞成；赞成与另选合计多于应选{self.places}名的本票无效。"
                         if self.write_in_lines else f"赞成的人数不得多于应选{self.places}名，多于的本票无效。")
        if self.kind == ItemKind.LIVELIHOOD and self.places:
            lines.append(f"赞成的项目不得超过{self.places}项，超过的本票无效。")
        lines.append("请用黑色或蓝色笔填写，不得在选票上作其他标记；二维码请勿折叠、污损。")
        lines.extend(self.extra_notes)
        return [f"{i}. {t}" for i, t in enumerate(lines, 1)]


# --- rendering ----------------------------------------------------------------------------

MARGIN = bl.MARGIN
TOP = bl.TOP
QR_SIZE = bl.QR_SIZE


def fit(pdf: FPDF, text: str, width: float, size: float, min_size: float) -> tuple[str, float]:
    """Largest font size <= size (down to min_size) at which text fits in width; else truncate."""
    s = size
    while s > min_size:
        pdf.set_font(FONT, size=s)
        if pdf.get_string_width(text) <= width:
            return text, s
        s -= 0.5
    pdf.set_font(FONT, size=min_size)
    while text and pdf.get_string_width(text + "…") > width:
        text = text[:-1]
    return text + "…", min_size


def fit_rows(pdf: FPDF, g: bl.PageGeometry, lay: "BallotLayout") -> list[tuple[str, float]]:
    """The candidates' names, each at the size that fits its row's title cell."""
    cell_font = min(11.0, max(7.0, g.row_h * 1.3))
    return [fit(pdf, t, g.col_title - 3, cell_font, 6.5) for t in lay.candidates]


def draw_table(pdf: FPDF, g: bl.PageGeometry, lay: "BallotLayout", rows: list[tuple[str, float]]) -> None:
    """The table at the geometry's place: its header, a row per candidate with its boxes, then
    the blank 另选 lines (no boxes: a name written there is 赞成)."""
    pdf.set_xy(MARGIN, g.header.y)
    pdf.set_line_width(0.3)
    for w, t in ((bl.COL_NO, "序号"), (g.col_title, lay.column_label()), *((g.col_box, t) for _, t in lay.marks)):
        pdf.set_font(FONT, size=11)
        if pdf.get_string_width(t) > w - 1:  # 基本满意 in a narrow column
            pdf.set_font(FONT, size=8)
        pdf.cell(w, g.header.h, t, border=1, align="C")
    rh = g.row_h
    for row in g.rows[len(rows):]:
        pdf.set_xy(row.x, row.y)
        pdf.set_font(FONT, size=min(11.0, max(7.0, rh * 1.3)))
        pdf.cell(bl.COL_NO, rh, "另选", border=1, align="C")
        pdf.cell(g.col_title, rh, "", border=1)
        pdf.cell(len(g.marks) * g.col_box, rh, "（写上姓名即为赞成）", border=1, align="C")
    for i, ((text, size), row, key) in enumerate(zip(rows, g.rows, g.candidates), 1):
        pdf.set_xy(row.x, row.y)
        pdf.set_font(FONT, size=min(size, 11))
        pdf.cell(bl.COL_NO, rh, str(i), border=1, align="C")
        pdf.set_font(FONT, size=size)
        pdf.cell(g.col_title, rh, text, border=1, align="L")
        for m in g.marks:
            b = g.boxes[(key, m)]
            pdf.rect(b.x, b.y, b.w, b.h)


def draw_page_marks(pdf: FPDF, g: bl.PageGeometry) -> None:
    """The four solid corner squares the mark reader finds the page by, and the layout's
    version (版式 L…) right-aligned at the foot of the QR code."""
    f = bl.FIDUCIAL_SIZE
    for cx, cy in g.fiducials:
        pdf.rect(cx - f / 2, cy - f / 2, f, f, style="F")
    pdf.set_font(FONT, size=7)
    pdf.set_xy(MARGIN, g.qr.bottom - 4)
    pdf.cell(pdf.w - 2 * MARGIN, 4, f"版式 L{g.version}", align="R")


class _Renderer:
    def __init__(self, layout: BallotLayout, font_path: Path):
        if not layout.candidates:
            raise InvalidInput("a ballot needs at least one candidate", where="candidates",
                               zh="选票上至少须有一个候选项")
        if len(layout.candidates) > MAX_CANDIDATES_PER_PAGE:
            raise InvalidInput(f"{len(layout.candidates)} candidates do not fit on one A4 ballot "
                               f"(at most {MAX_CANDIDATES_PER_PAGE})", where="candidates",
                               zh=f"{len(layout.candidates)} 个候选项排不进一张 A4 选票"
                                  f"（最多 {MAX_CANDIDATES_PER_PAGE} 个）")
        self.layout = layout
        pdf = a4_pdf(f"{layout.heading()} {layout.item_title}", margin=MARGIN, top=TOP, bottom=None,
                     font_path=font_path)
        self.pdf = pdf
        self._static: bytes | None = None
        self.width = pdf.w - 2 * MARGIN
        self._plan()

    def _fit(self, text: str, width: float, size: float, min_size: float) -> tuple[str, float]:
        return fit(self.pdf, text, width, size, min_size)

    def _plan(self) -> None:
        """Work out sizes once per batch: every page has the same static part."""
        lay, n = self.layout, len(self.layout.candidates)
        self.heading = self._fit(lay.heading(), self.width, 14, 9)
        self.title = self._fit(lay.item_title, self.width, 19, 11)
        self.label = self._fit(lay.ballot_label(), self.width, 16, 10)
        self.notes = lay.instructions()
        if len(self.notes) > bl.MAX_NOTE_LINES:  # the table top is fixed for the mark reader
            raise InvalidInput(f"at most {bl.MAX_NOTE_LINES} instruction lines fit above the table",
                               where="extra_notes", zh=f"选票说明最多 {bl.MAX_NOTE_LINES} 行")
        # 另选 lines are rows of their own below the candidates' (no mark boxes: a name written is 赞成)
        self.geom = bl.page_geometry(n, marks=[m for m, _ in lay.marks], write_in_rows=lay.write_in_lines)
        self.rows = fit_rows(self.pdf, self.geom, lay)

    def page(self, qr_text: str, serial_short: str) -> None:
        pdf = self.pdf
        pdf.add_page()
        if self._static is None:
            # Draw the static part through fpdf2 once, keep its content-stream bytes, and
            # replay them on later pages: identical output, about 3x faster per page. The
            # font is registered on every page by the set_font/cell calls below.
            contents = pdf.pages[pdf.page].contents
            start = len(contents)
            self._draw_static()
            self._static = bytes(contents[start:]).rstrip(b"\n")
        else:
            pdf._out(self._static)
        self._draw_variable(qr_text, serial_short)

    def _draw_static(self) -> None:
        pdf, lay = self.pdf, self.layout
        pdf.set_xy(MARGIN, TOP)
        text, size = self.heading
        pdf.set_font(FONT, size=size)
        pdf.cell(self.width, 8, text, align="C", new_x="LMARGIN", new_y="NEXT")
        text, size = self.title
        pdf.set_font(FONT, size=size)
        pdf.cell(self.width, 11, text, align="C", new_x="LMARGIN", new_y="NEXT")
        text, size = self.label
        pdf.set_font(FONT, size=size)
        pdf.cell(self.width, 9, text, align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, size=9.5)
        for line in self.notes:
            pdf.cell(self.width, 5, line, new_x="LMARGIN", new_y="NEXT")
        g = self.geom
        draw_table(pdf, g, lay, self.rows)
        draw_page_marks(pdf, g)

    def _draw_variable(self, qr_text: str, serial_short: str) -> None:
        """The QR code and serial at the bottom of the page."""
        lay = self.layout
        # a secret ballot's serial is in the QR code only
        draw_qr_block(self.pdf, qr_text, self.geom.qr, None if lay.secret else (15, f"票号 {serial_short}"),
                      "二维码含本票票号与签名；工作人员可用 ballot-service ballots verify 核验签名真伪及本票是否已发出、已计票。",
                      lay.key_fingerprint)

    def save(self, path: Path) -> None:
        save_pdf(self.pdf, path)


def draw_qr_block(pdf: FPDF, qr_text: str, q, heading: tuple[float, str] | None, explanation: str,
                  key_fingerprint: str | None) -> None:
    """The signed QR code at `q` and, beside it, a heading line ((font size, text), if any),
    what the code holds, the key's fingerprint and the secret-ballot instruction."""
    pdf._out(qr.pdf_ops(pdf, qr.qr_matrix(qr_text), q.x, q.y, q.w))
    pdf.set_xy(MARGIN + QR_SIZE + 6, q.y + 4)
    if heading is not None:
        pdf.set_font(FONT, size=heading[0])
        pdf.cell(0, 8, heading[1], new_x="LEFT", new_y="NEXT")
    pdf.set_font(FONT, size=8.5)
    pdf.cell(0, 5, explanation, new_x="LEFT", new_y="NEXT")
    if key_fingerprint:
        pdf.cell(0, 5, f"签名密钥指纹 {key_fingerprint}", new_x="LEFT", new_y="NEXT")
    pdf.cell(0, 5, "本票为无记名投票，请勿书写姓名。", new_x="LEFT", new_y="NEXT")


def save_pdf(pdf: FPDF, path: Path) -> None:
    """Write the PDF beside its name and move it there: no half-written ballot file."""
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    tmp = path.with_name(path.name + ".part")
    pdf.output(str(tmp))
    os.replace(tmp, path)


def ballot_pdf(pages: Sequence[tuple[BallotLayout, str]]) -> bytes:
    """Ballots ((layout, QR text) pairs, a page each: the elections of a ballot set) as one PDF's
    bytes, never written to a file (a hybrid vote's paper ballot, printed when the secretariat
    allows it: README, "Hybrid votes")."""
    font, first = find_font(), None
    for layout, qr_text in pages:
        r = _Renderer(layout, font)
        if first is None:
            first = r
        else:  # one document: a later election's page is drawn into the first one's PDF
            r.pdf = first.pdf
        r.page(qr_text, "")
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return bytes(first.pdf.output())


def _render_file(layout: BallotLayout, font_path: str, ballots: Sequence[tuple[str, str]], path: str) -> tuple[str, int]:
    r = layout.renderer(Path(font_path))
    for qr_text, short in ballots:
        r.page(qr_text, short)
    r.save(Path(path))
    return path, len(ballots)


def write_ballot_pdfs(layout: BallotLayout, ballots: Sequence[tuple[str, str]], out_dir: Path, prefix: str, *,
                      pages_per_file: int = PAGES_PER_FILE, processes: int | None = None,
                      progress: Callable[[int], None] | None = None) -> list[Path]:
    """Write `ballots` ((qr_text, short_serial) pairs) as one-page ballots into
    `out_dir/<prefix>-partNN.pdf` files of at most `pages_per_file` pages; files are rendered
    in up to `processes` processes (default: CPU count, at most 4). `progress(n)` is called
    with the number of pages each time a file is done. Returns the paths in order."""
    if not ballots:
        return []
    font = find_font()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chunks = [ballots[i:i + pages_per_file] for i in range(0, len(ballots), pages_per_file)]
    width = max(2, len(str(len(chunks))))
    paths = [out_dir / f"{prefix}-part{j:0{width}d}.pdf" for j in range(1, len(chunks) + 1)]
    for p in paths:
        if p.exists():
            raise InvalidInput(f"{p} already exists; refusing to overwrite printed ballots", where=str(p),
                               zh=f"{p} 已存在：不覆盖已印制的选票")
    procs = min(processes or min(os.cpu_count() or 1, 4), len(chunks))
    layout.renderer(font)  # fail fast (font, too many candidates) before starting workers
    if procs <= 1:
        for chunk, p in zip(chunks, paths):
            _render_file(layout, str(font), list(chunk), str(p))
            if progress:
                progress(len(chunk))
        return paths
    # fork is quick and needs no importable __main__; a multi-threaded caller (a web server)
    # must not fork, so it spawns fresh interpreters instead.
    method = "fork" if ("fork" in multiprocessing.get_all_start_methods()
                        and threading.active_count() == 1) else "spawn"
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=procs, mp_context=ctx) as pool:
        futures = [pool.submit(_render_file, layout, str(font), list(chunk), str(p))
                   for chunk, p in zip(chunks, paths)]
        for fut in as_completed(futures):
            _, n = fut.result()
            if progress:
                progress(n)
    return paths


def next_batch_prefix(out_dir: Path, item_id: int, round_number: int) -> str:
    """`item<ID>-round<N>-batch<K>`, K one more than any batch already in out_dir."""
    out_dir = Path(out_dir)
    stem = f"item{item_id}-round{round_number}-batch"
    batches = [0]
    if out_dir.is_dir():
        for p in out_dir.glob(stem + "*-part*.pdf"):
            num = p.name[len(stem):].split("-", 1)[0]
            if num.isdigit():
                batches.append(int(num))
    return f"{stem}{max(batches) + 1}"


def print_paper_ballots(item, round_, tokens: list[dict], out_dir: Path, *, key_fingerprint: str | None = None,
                        pages_per_file: int = PAGES_PER_FILE, processes: int | None = None,
                        progress: Callable[[int], None] | None = None) -> list[Path]:
    """PDFs for tokens made by ballots.create_paper_ballots for this item and round."""
    layout = BallotLayout.from_item(item, round_, key_fingerprint=key_fingerprint)
    pairs = [(token_to_text(t), serial_short(t["payload"]["serial"])) for t in tokens]
    prefix = next_batch_prefix(out_dir, item.id, round_.number)
    return write_ballot_pdfs(layout, pairs, out_dir, prefix, pages_per_file=pages_per_file,
                             processes=processes, progress=progress)
