"""Reading a roster: the CSV and Excel files a secretariat already keeps, and the API's JSON,
into checked rows (domain.roster stores them).

Columns (Chinese headers as secretariats write them, English accepted too):
编号/代表证号 (id), 姓名 (name), 代表团/小组 (group), 座位号 (seat); optional 卡号 (card).
A bad file is refused as a whole, naming the row and column of every problem (RosterInvalid).
The JSON roster of the API goes through the same checks (read_members_json).
"""
from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from openpyxl import load_workbook

from ballot_service.errors import InvalidInput
from ballot_service.formats import names

HEADERS = {
    "member_no": ("代表证号", "编号", "证号", "id", "member_no"),
    "name": ("姓名", "name"),
    "group": ("代表团", "小组", "代表团/小组", "group", "delegation"),
    "seat": ("座位号", "座位", "seat"),
    "card_code": ("卡号", "card", "card_code"),
}
REQUIRED = ("member_no", "name")
MAX_ROWS = 20000  # members in one roster
# What a file may hold at all, checked while it is read (so a small file that unpacks into a
# million rows is refused after a few thousand, not after minutes).
MAX_SHEET_ROWS = MAX_ROWS + 1000  # rows read, blank ones included
MAX_CELLS = 1_000_000  # cells read
MAX_XLSX_UNPACKED = 50 * 1024 * 1024  # bytes of XML inside an .xlsx
MAX_CELL_CHARS = 10_000  # one CSV field (Python's csv module would stop at 131,072 with an error)
MAX_ERRORS = 100  # problems reported for one file
LIMITS = {"member_no": names.MEMBER_NO, "name": names.MEMBER_NAME, "group": names.MEMBER_GROUP,
          "seat": names.SEAT, "card_code": names.CARD_CODE}
JSON_KEYS = {"id": "member_no", "name": "name", "group": "group", "seat": "seat", "card": "card_code"}


@dataclass(frozen=True)
class RosterRow:
    line: int
    member_no: str
    name: str
    group: str | None
    seat: str | None
    card_code: str | None


class RosterInvalid(InvalidInput):
    """A roster with one or more problems: `problems` holds every one (at most MAX_ERRORS),
    each naming its row and column; the message and `where` are the first one's."""

    def __init__(self, problems: list[InvalidInput], *, zh: str):
        first, more = problems[0], len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''} in this roster)" if more else ""
        super().__init__(first.message + suffix, where=first.where,
                         zh=f"{first.zh or first.message}{zh if more else ''}")
        self.problems = problems


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


def read_members_json(members) -> list[RosterRow]:
    """The JSON roster ({"members": [{"id", "name", "group", "seat", "card"}]}) through the
    same checks as a file; errors name members[i].field."""
    if not isinstance(members, list):
        raise InvalidInput("members must be an array of objects", where="members", zh="members 须为代表对象的数组")
    if not members:
        raise InvalidInput("the roster has no members", where="members", zh="名册中没有代表")
    if len(members) > MAX_ROWS:
        raise InvalidInput(f"more than {MAX_ROWS} members in one roster", where="members",
                           zh=f"一份名册最多 {MAX_ROWS} 名代表")
    entries, problems = [], []
    for i, m in enumerate(members):
        if not isinstance(m, dict):
            problems.append(InvalidInput("each member must be an object {id, name, group, seat, card}",
                                         where=f"members[{i}]", zh="每名代表须为对象 {id, name, group, seat, card}"))
            continue
        unknown = sorted(set(m) - set(JSON_KEYS))
        if unknown:
            problems.append(InvalidInput(f"unknown field {unknown[0]!r}; a member has id, name, group, seat, card",
                                         where=f"members[{i}].{unknown[0]}",
                                         zh=f"未知字段 {unknown[0]!r}；代表的字段为 id、name、group、seat、card"))
        entries.append((i + 1, {JSON_KEYS[k]: v for k, v in m.items() if k in JSON_KEYS}))
    keys = {v: k for k, v in JSON_KEYS.items()}
    return _check_entries(entries, lambda line, f: f"members[{line - 1}].{keys[f]}", lambda f: keys[f], problems)


def _decode(data: bytes, name: str) -> str:
    # Excel on Chinese Windows saves CSV as GBK (GB18030 is its superset); try UTF-8 first.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("cannot read the file's text: it is neither UTF-8 nor GBK/GB18030", where=name,
                       zh="无法读取文件内容：编码既不是 UTF-8，也不是 GBK/GB18030")


class _Budget:
    """Counts rows and cells as a file is read; refuses the file as soon as one runs out."""

    def __init__(self, name: str):
        self.name, self.rows, self.cells = name, 0, 0

    def take(self, row) -> None:
        self.rows += 1
        self.cells += len(row)
        if self.rows > MAX_SHEET_ROWS:
            raise InvalidInput(f"the file has more than {MAX_SHEET_ROWS} rows (a roster holds at most "
                               f"{MAX_ROWS} members); reading stopped at row {self.rows}", where=self.name,
                               zh=f"文件超过 {MAX_SHEET_ROWS} 行（一份名册最多 {MAX_ROWS} 名代表），已停止读取")
        if self.cells > MAX_CELLS:
            raise InvalidInput(f"the file has more than {MAX_CELLS} cells; reading stopped at row {self.rows}",
                               where=self.name, zh=f"文件超过 {MAX_CELLS} 个单元格，已停止读取")


def _csv_rows(data: bytes, name: str) -> list[list[str]]:
    text = _decode(data, name)
    if "\x00" in text:
        raise InvalidInput("the file contains binary data, not CSV text", where=name,
                           zh="文件含有二进制数据，不是 CSV 文本")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    budget, rows = _Budget(name), []
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(MAX_CELL_CHARS)
        for row in reader:
            budget.take(row)
            rows.append(row)
    except csv.Error as exc:
        raise InvalidInput(f"row {reader.line_num} cannot be read as CSV: {exc} (a cell holds at most "
                           f"{MAX_CELL_CHARS} characters)", where=f"{name}: row {reader.line_num}",
                           zh=f"第 {reader.line_num} 行无法按 CSV 读取（单元格最多 {MAX_CELL_CHARS} 个字符）") from None
    finally:
        csv.field_size_limit(limit)
    return rows


def _xlsx_rows(data: bytes, name: str) -> list[list[str]]:
    """The first sheet's rows, read streaming (openpyxl read_only) within _Budget."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            unpacked = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidInput(f"not a readable .xlsx workbook ({exc.__class__.__name__})", where=name,
                           zh=f"无法读取该 .xlsx 工作簿（{exc.__class__.__name__}）") from None
    if unpacked > MAX_XLSX_UNPACKED:
        raise InvalidInput(f"the workbook unpacks to {unpacked} bytes; at most {MAX_XLSX_UNPACKED} are read",
                           where=name, zh=f"该工作簿解压后为 {unpacked} 字节，超过 {MAX_XLSX_UNPACKED} 字节的上限")
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InvalidInput(f"not a readable .xlsx workbook ({exc.__class__.__name__})", where=name,
                           zh=f"无法读取该 .xlsx 工作簿（{exc.__class__.__name__}）") from None
    try:
        ws = wb.worksheets[0]
        ws.reset_dimensions()  # the sheet's declared size is not trusted: rows are as stored
        budget, rows = _Budget(name), []
        for row in ws.iter_rows(values_only=True):
            budget.take(row)
            rows.append(["" if v is None else _cell_text(v) for v in row])
    except InvalidInput:
        raise
    except Exception as exc:  # openpyxl's XML parsing raises many kinds
        raise InvalidInput(f"not a readable .xlsx workbook ({exc.__class__.__name__})", where=name,
                           zh=f"无法读取该 .xlsx 工作簿（{exc.__class__.__name__}）") from None
    finally:
        wb.close()
    return rows


xlsx_rows = _xlsx_rows  # the budgeted, streaming .xlsx reader; the project register reads with it too


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
            f"missing column {'、'.join(missing)}; the first row has: {', '.join(header[:50]) or '(nothing)'}",
            where=f"{name}: row {header_line}",
            zh=f"缺少“{'、'.join(missing)}”列；第一行为：{'，'.join(header[:50]) or '（空）'}")
    if len(numbered) == 1:
        raise InvalidInput("the roster has a header row but no members", where=name, zh="名册只有表头，没有代表")
    if len(numbered) - 1 > MAX_ROWS:
        raise InvalidInput(f"more than {MAX_ROWS} members in one roster", where=name,
                           zh=f"一份名册最多 {MAX_ROWS} 名代表")
    entries = [(line, {f: (row[i] if i < len(row) else None) for f, i in columns.items()})
               for line, row in numbered[1:]]
    label = {f: header[columns[f]] if f in columns else HEADERS[f][0] for f in LIMITS}
    return _check_entries(entries, lambda line, f: f"{name}: row {line}, column {label[f]}", label.get, [])


def _check_entries(entries, where, label, problems: list[InvalidInput]) -> list[RosterRow]:
    """The one check of a roster's members, whatever the source: each value a clean name
    (formats.names) within its column's length, 代表证号 and 姓名 present, no 代表证号,
    seat or card twice. Collects every problem (up to MAX_ERRORS), then refuses them all."""
    seen: dict[str, dict[str, int]] = {"member_no": {}, "seat": {}, "card_code": {}}
    out = []
    for line, values in entries:
        clean: dict[str, str | None] = {}
        for f in LIMITS:
            raw = values.get(f)
            if isinstance(raw, str):
                raw = raw.strip() or None
            required = f in REQUIRED
            what = label(f)
            if f == "name" and clean.get("member_no"):
                what = f"{label(f)} of {clean['member_no']}"
            try:
                clean[f] = names.check_name(raw, what=what, where=where(line, f), max_len=LIMITS[f],
                                            required=required)
            except InvalidInput as exc:
                problems.append(exc)
                clean[f] = None
        for f, first_seen in seen.items():
            v = clean.get(f)
            if not v:
                continue
            if v in first_seen:
                problems.append(InvalidInput(
                    f"duplicate {label(f)} {v} (first on row {first_seen[v]})" if f == "member_no"
                    else f"{label(f)} {v} is given twice (first on row {first_seen[v]})",
                    where=where(line, f),
                    zh=f"{label(f)} {v} 重复（首次出现在第 {first_seen[v]} 行）"))
            else:
                first_seen[v] = line
        if len(problems) >= MAX_ERRORS:
            break
        if clean["member_no"] and clean["name"]:
            out.append(RosterRow(line, clean["member_no"], clean["name"], clean["group"], clean["seat"],
                                 clean["card_code"]))
    if problems:
        raise RosterInvalid(problems[:MAX_ERRORS], zh=f"（名册另有 {len(problems[:MAX_ERRORS]) - 1} 处问题）")
    return out
