"""Roster import from the CSV and Excel files a secretariat already keeps.

Columns (Chinese headers as secretariats write them, English accepted too):
编号/代表证号 (id), 姓名 (name), 代表团/小组 (group), 座位号 (seat); optional 卡号 (card).
A bad file is refused as a whole, naming the row and column at fault.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.domain import audit
from ballot_service.errors import InvalidInput
from ballot_service.models import Body, Member

HEADERS = {
    "member_no": ("代表证号", "编号", "证号", "id", "member_no"),
    "name": ("姓名", "name"),
    "group": ("代表团", "小组", "代表团/小组", "group", "delegation"),
    "seat": ("座位号", "座位", "seat"),
    "card_code": ("卡号", "card", "card_code"),
}
REQUIRED = ("member_no", "name")
MAX_ROWS = 20000


@dataclass(frozen=True)
class RosterRow:
    line: int
    member_no: str
    name: str
    group: str | None
    seat: str | None
    card_code: str | None


def read_roster(path: str | Path, data: bytes | None = None) -> list[RosterRow]:
    """Read and validate a roster file; raise InvalidInput naming the row/column at fault."""
    path = Path(path)
    suffix = path.suffix.lower()
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read roster file: {exc.strerror}", where=str(path),
                               zh=f"无法读取名册文件：{exc.strerror}") from None
    if suffix == ".xls" or data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise InvalidInput(
            "this is an old Excel .xls file; open it in Excel or WPS and save as .xlsx "
            "(Excel 工作簿) or CSV, then import again", where=path.name,
            zh="这是旧版 Excel .xls 文件：请用 Excel 或 WPS 打开，另存为 .xlsx（Excel 工作簿）或 CSV 后重新导入")
    if suffix == ".xlsx" or data[:2] == b"PK":
        table = _xlsx_rows(data, path.name)
    elif suffix in (".csv", ".txt", ""):
        table = _csv_rows(data, path.name)
    else:
        raise InvalidInput(f"unsupported roster file type {suffix!r}; use .csv or .xlsx", where=path.name,
                           zh=f"不支持 {suffix} 类型的名册文件，请使用 .csv 或 .xlsx")
    return _validate(table, path.name)


def _decode(data: bytes, name: str) -> str:
    # Excel on Chinese Windows saves CSV as GBK (GB18030 is its superset); try UTF-8 first.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("cannot read the file's text: it is neither UTF-8 nor GBK/GB18030", where=name,
                       zh="无法读取文件内容：编码既不是 UTF-8，也不是 GBK/GB18030")


def _csv_rows(data: bytes, name: str) -> list[list[str]]:
    text = _decode(data, name)
    if "\x00" in text:
        raise InvalidInput("the file contains binary data, not CSV text", where=name,
                           zh="文件含有二进制数据，不是 CSV 文本")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    return [list(r) for r in csv.reader(io.StringIO(text), dialect)]


def _xlsx_rows(data: bytes, name: str) -> list[list[str]]:
    import zipfile

    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InvalidInput(f"not a readable .xlsx workbook ({exc.__class__.__name__})", where=name,
                           zh=f"无法读取该 .xlsx 工作簿（{exc.__class__.__name__}）") from None
    ws = wb.worksheets[0]
    rows = []
    for row in ws.iter_rows(values_only=True):
        rows.append(["" if v is None else _cell_text(v) for v in row])
    wb.close()
    return rows


def _cell_text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # Excel stores 代表证号 1001 as 1001.0
    return str(v)


def _validate(table: list[list[str]], name: str) -> list[RosterRow]:
    # Keep file row numbers: blank rows are skipped, never renumbered away.
    numbered = [(i, r) for i, r in enumerate(table, start=1) if any(c.strip() for c in r)]
    if not numbered:
        raise InvalidInput("the roster file is empty", where=name, zh="名册文件是空的")
    header_line, header_row = numbered[0]
    header = [c.strip() for c in header_row]
    columns: dict[str, int] = {}
    for field, aliases in HEADERS.items():
        for i, h in enumerate(header):
            if h in aliases or h.lower() in aliases:
                columns.setdefault(field, i)
    missing = [HEADERS[f][0] for f in REQUIRED if f not in columns]
    if missing:
        raise InvalidInput(
            f"missing column {'、'.join(missing)}; the first row has: {', '.join(header) or '(nothing)'}",
            where=f"{name}: row {header_line}",
            zh=f"缺少“{'、'.join(missing)}”列；第一行为：{'，'.join(header) or '（空）'}")
    if len(numbered) == 1:
        raise InvalidInput("the roster has a header row but no members", where=name, zh="名册只有表头，没有代表")
    if len(numbered) - 1 > MAX_ROWS:
        raise InvalidInput(f"more than {MAX_ROWS} members in one roster", where=name,
                           zh=f"一份名册最多 {MAX_ROWS} 名代表")

    def cell(row: list[str], field: str) -> str | None:
        i = columns.get(field)
        if i is None or i >= len(row):
            return None
        return row[i].strip() or None

    seen: dict[str, int] = {}
    seats: dict[str, int] = {}
    cards: dict[str, int] = {}
    out = []
    for line, row in numbered[1:]:
        member_no = cell(row, "member_no")
        member_name = cell(row, "name")
        if not member_no:
            raise InvalidInput(f"empty {header[columns['member_no']]}",
                               where=f"{name}: row {line}, column {header[columns['member_no']]}",
                               zh=f"第 {line} 行的{header[columns['member_no']]}为空")
        if not member_name:
            raise InvalidInput(f"empty {header[columns['name']]} for {member_no}",
                               where=f"{name}: row {line}, column {header[columns['name']]}",
                               zh=f"{member_no} 的{header[columns['name']]}为空")
        if member_no in seen:
            raise InvalidInput(
                f"duplicate {header[columns['member_no']]} {member_no} (first on row {seen[member_no]})",
                where=f"{name}: row {line}, column {header[columns['member_no']]}",
                zh=f"{header[columns['member_no']]} {member_no} 重复（首次出现在第 {seen[member_no]} 行）")
        seen[member_no] = line
        seat = cell(row, "seat")
        if seat:
            if seat in seats:
                raise InvalidInput(f"seat {seat} is given twice (first on row {seats[seat]})",
                                   where=f"{name}: row {line}, column {header[columns['seat']]}",
                                   zh=f"座位号 {seat} 重复（首次出现在第 {seats[seat]} 行）")
            seats[seat] = line
        card = cell(row, "card_code")
        if card:
            if card in cards:
                raise InvalidInput(f"card {card} is given twice (first on row {cards[card]})",
                                   where=f"{name}: row {line}, column {header[columns['card_code']]}",
                                   zh=f"卡号 {card} 重复（首次出现在第 {cards[card]} 行）")
            cards[card] = line
        if len(member_no) > 64 or len(member_name) > 100:
            raise InvalidInput("value too long", where=f"{name}: row {line}",
                               zh=f"第 {line} 行内容过长（代表证号最多 64 个字符，姓名最多 100 个字符）")
        out.append(RosterRow(line, member_no, member_name, cell(row, "group"), seat, card))
    return out


def import_roster(db: Session, body: Body, rows: list[RosterRow], source: str) -> dict:
    """Add new members and update existing ones (by 代表证号); members not in the file
    leave office. Returns counts. Only flushes: the caller commits."""
    existing = {m.member_no: m for m in db.scalars(select(Member).where(Member.body_id == body.id))}
    added = updated = 0
    for r in rows:
        m = existing.pop(r.member_no, None)
        if m is None:
            db.add(Member(body_id=body.id, member_no=r.member_no, name=r.name, group=r.group,
                          seat=r.seat, card_code=r.card_code, in_office=True))
            added += 1
        else:
            m.name, m.group, m.seat, m.card_code, m.in_office = r.name, r.group, r.seat, r.card_code, True
            updated += 1
    left = 0
    for m in existing.values():
        if m.in_office:
            m.in_office = False
            left += 1
    db.flush()
    summary = {"added": added, "updated": updated, "left_office": left, "in_office": len(rows)}
    audit.append(db, "roster_imported", {"body_id": body.id, "source": source, **summary})
    return summary
