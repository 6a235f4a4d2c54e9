"""Roster import: CSV (UTF-8, BOM, GBK, tab), .xlsx, refusals naming row and column, DB import."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from ballot_service.domain.roster import import_roster
from ballot_service.domain.sittings import create_body
from ballot_service.errors import InvalidInput
from ballot_service.formats.roster import read_roster
from ballot_service.models import AuditEvent, Member

ROSTER = ("代表证号,姓名,代表团,座位号,卡号\n"
          "1001,张三,城关代表团,A01,C1001\n"
          "1002,李四,城关代表团,A02,\n"
          "1003,王五,城东代表团,B01,C1003\n")

EXPECTED = [
    (2, "1001", "张三", "城关代表团", "A01", "C1001"),
    (3, "1002", "李四", "城关代表团", "A02", None),
    (4, "1003", "王五", "城东代表团", "B01", "C1003"),
]


def as_tuples(rows):
    return [(r.line, r.member_no, r.name, r.group, r.seat, r.card_code) for r in rows]


def refused(name, data) -> InvalidInput:
    with pytest.raises(InvalidInput) as ei:
        read_roster(name, data)
    return ei.value


def xlsx_bytes(rows) -> bytes:
    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --- reading ---------------------------------------------------------------------------

def test_utf8_csv():
    assert as_tuples(read_roster("roster.csv", ROSTER.encode("utf-8"))) == EXPECTED


def test_utf8_bom_csv():
    rows = read_roster("roster.csv", b"\xef\xbb\xbf" + ROSTER.encode("utf-8"))
    assert as_tuples(rows) == EXPECTED


def test_gbk_csv():
    data = ROSTER.encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # really not UTF-8
    assert as_tuples(read_roster("名单.csv", data)) == EXPECTED


def test_gb18030_only_characters():
    # 䶮 (U+4DAE) is in GB18030 but not GBK; rare characters occur in personal names.
    text = "代表证号,姓名\n1001,刘䶮\n"
    rows = read_roster("roster.csv", text.encode("gb18030"))
    assert rows[0].name == "刘䶮"


def test_tab_separated():
    data = ROSTER.replace(",", "\t").encode("utf-8")
    assert as_tuples(read_roster("roster.txt", data)) == EXPECTED


def test_semicolon_separated():
    data = ROSTER.replace(",", ";").encode("utf-8")
    assert as_tuples(read_roster("roster.csv", data)) == EXPECTED


def test_crlf_and_surrounding_spaces():
    data = "代表证号, 姓名 ,座位号\r\n 1001 , 张三 , A01 \r\n1002,李四,\r\n".encode("utf-8")
    rows = read_roster("roster.csv", data)
    assert as_tuples(rows) == [(2, "1001", "张三", None, "A01", None), (3, "1002", "李四", None, None, None)]


def test_quoted_field_with_comma():
    data = '代表证号,姓名,代表团\n1001,张三,"城关,城东联组"\n'.encode("utf-8")
    assert read_roster("roster.csv", data)[0].group == "城关,城东联组"


def test_english_headers():
    data = ("ID,Name,Delegation,Seat,Card\n"
            "1001,Zhang San,North,A01,C1\n"
            "1002,Li Si,South,A02,C2\n").encode("utf-8")
    assert as_tuples(read_roster("roster.csv", data)) == [
        (2, "1001", "Zhang San", "North", "A01", "C1"),
        (3, "1002", "Li Si", "South", "A02", "C2")]


def test_alternative_chinese_headers_and_column_order():
    data = "座位,小组,姓名,编号\nA01,一组,张三,7\n".encode("utf-8")
    assert as_tuples(read_roster("roster.csv", data)) == [(2, "7", "张三", "一组", "A01", None)]


def test_blank_lines_skipped():
    data = (ROSTER + "\n\n,,,,\n").encode("utf-8")
    assert len(read_roster("roster.csv", data)) == 3


def test_xlsx_numbers_become_text():
    data = xlsx_bytes([
        ["代表证号", "姓名", "代表团", "座位号", "卡号"],
        [1001, "张三", "城关代表团", 12, 880001],
        [1002.0, "李四", None, "A02", None],
        ["001003", "王五", "城东代表团", None, "C3"],
    ])
    assert data[:2] == b"PK"
    rows = read_roster("roster.xlsx", data)
    assert as_tuples(rows) == [
        (2, "1001", "张三", "城关代表团", "12", "880001"),
        (3, "1002", "李四", None, "A02", None),
        (4, "001003", "王五", "城东代表团", None, "C3"),
    ]


def test_xlsx_detected_by_content_without_suffix():
    data = xlsx_bytes([["编号", "姓名"], [1, "张三"]])
    assert as_tuples(read_roster("upload", data)) == [(2, "1", "张三", None, None, None)]


def test_read_from_path(tmp_path):
    p = tmp_path / "roster.csv"
    p.write_bytes(ROSTER.encode("gbk"))
    assert as_tuples(read_roster(p)) == EXPECTED


def test_missing_file(tmp_path):
    e = refused(tmp_path / "nope.csv", None)
    assert "cannot read" in e.message


# --- refusals ----------------------------------------------------------------------------

def test_missing_name_column():
    e = refused("roster.csv", "代表证号,代表团\n1001,城关\n".encode("utf-8"))
    assert "姓名" in e.message
    assert "代表证号, 代表团" in e.message  # says what the first row has
    assert e.where == "roster.csv: row 1"


def test_missing_id_column_in_xlsx():
    e = refused("roster.xlsx", xlsx_bytes([["姓名", "座位号"], ["张三", 1]]))
    assert "代表证号" in e.message
    assert e.where == "roster.xlsx: row 1"


def test_duplicate_member_no():
    data = "代表证号,姓名\n1001,张三\n1002,李四\n1001,王五\n".encode("utf-8")
    e = refused("roster.csv", data)
    assert "1001" in e.message and "row 2" in e.message
    assert e.where == "roster.csv: row 4, column 代表证号"


def test_duplicate_member_no_in_xlsx_number_and_text():
    # 1001 as a number and "1001" as text are the same 代表证号
    e = refused("r.xlsx", xlsx_bytes([["代表证号", "姓名"], [1001, "张三"], ["1001", "李四"]]))
    assert e.where == "r.xlsx: row 3, column 代表证号"


def test_empty_name():
    data = "代表证号,姓名,座位号\n1001,张三,1\n1002,  ,2\n".encode("utf-8")
    e = refused("roster.csv", data)
    assert "1002" in e.message
    assert e.where == "roster.csv: row 3, column 姓名"


def test_empty_member_no():
    e = refused("roster.csv", "代表证号,姓名\n1001,张三\n,李四\n".encode("utf-8"))
    assert e.where == "roster.csv: row 3, column 代表证号"


def test_duplicate_seat():
    data = "代表证号,姓名,座位号\n1001,张三,A01\n1002,李四,A02\n1003,王五,A01\n".encode("utf-8")
    e = refused("roster.csv", data)
    assert "A01" in e.message and "row 2" in e.message
    assert e.where == "roster.csv: row 4, column 座位号"


def test_english_header_named_in_error():
    e = refused("r.csv", b"id,name\n1,A\n2,\n")
    assert e.where == "r.csv: row 3, column name"


def test_value_too_long():
    e = refused("r.csv", ("代表证号,姓名\n1001," + "张" * 101 + "\n").encode("utf-8"))
    assert e.where == "r.csv: row 2, column 姓名"
    assert "101 characters" in e.message and "at most 100" in e.message


def test_old_xls_refused_by_suffix_and_by_content():
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    for name in ("名单.xls", "名单.xlsx", "名单.csv"):
        e = refused(name, ole)
        assert ".xls" in e.message and ".xlsx" in e.message
        assert e.where == name
    e = refused("名单.xls", b"anything")
    assert ".xls" in e.message


@pytest.mark.parametrize("data", [
    b"PK\x03\x04 this is not a zip",
    b"",
    b"not a zip at all",
])
def test_corrupted_xlsx(data):
    e = refused("roster.xlsx", data)
    assert "not a readable .xlsx" in e.message
    assert e.where == "roster.xlsx"


def test_truncated_xlsx():
    good = xlsx_bytes([["代表证号", "姓名"], [1, "张三"]])
    e = refused("roster.xlsx", good[: len(good) // 2])
    assert "not a readable .xlsx" in e.message


def test_zip_that_is_not_a_workbook():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "hello")
    e = refused("roster.xlsx", buf.getvalue())
    assert "not a readable .xlsx" in e.message


def test_undecodable_bytes():
    # 0xFF is neither valid UTF-8 nor a valid GB18030 lead byte
    data = "代表证号,姓名\n1001,".encode("utf-8") + b"\xff\xfe\n"
    for enc in ("utf-8", "gb18030"):
        with pytest.raises(UnicodeDecodeError):
            data.decode(enc)
    e = refused("roster.csv", data)
    assert "neither UTF-8 nor GBK" in e.message
    assert e.where == "roster.csv"


def test_utf16_export_refused():
    # Excel's "Unicode text" export is UTF-16LE with a BOM: refused clearly, not misread.
    data = "代表证号\t姓名\n1001\t张三\n".encode("utf-16")
    e = refused("roster.txt", data)
    assert e.where == "roster.txt"


def test_binary_data_refused():
    e = refused("roster.csv", b"\x00\x01\x02abc")
    assert "binary" in e.message


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\xef\xbb\xbf", b" , \n,\n"])
def test_empty_file(data):
    e = refused("roster.csv", data)
    assert "empty" in e.message
    assert e.where == "roster.csv"


def test_header_only_is_refused():
    # A header with no members would take everyone out of office: refuse it.
    e = refused("roster.csv", "代表证号,姓名\n".encode("utf-8"))
    assert "no members" in e.message


def test_unsupported_suffix():
    e = refused("roster.pdf", b"%PDF-1.4")
    assert "unsupported" in e.message and e.where == "roster.pdf"


def test_row_numbers_count_blank_lines():
    data = "代表证号,姓名\n1001,张三\n\n1002,\n".encode("utf-8")
    e = refused("roster.csv", data)
    assert e.where == "roster.csv: row 4, column 姓名"


def test_row_numbers_count_blank_rows_xlsx():
    rows = read_roster("r.xlsx", xlsx_bytes([["代表证号", "姓名"], [None, None], [1001, "张三"]]))
    assert rows[0].line == 3


def test_duplicate_card_refused():
    data = "代表证号,姓名,卡号\n1001,张三,C1\n1002,李四,C1\n".encode("utf-8")
    e = refused("roster.csv", data)
    assert e.where == "roster.csv: row 3, column 卡号"


# --- import into the database --------------------------------------------------------------

def members_of(db, body):
    return {m.member_no: (m.name, m.group, m.seat, m.card_code, m.in_office)
            for m in db.scalars(select(Member).where(Member.body_id == body.id))}


def test_import_adds_updates_and_retires(db):
    body = create_body(db, "某市人民代表大会", "congress")
    other = create_body(db, "某市人大常委会", "standing_committee")
    s = import_roster(db, other, read_roster("o.csv", "代表证号,姓名\n1001,别人\n".encode()), "o.csv")
    assert s["added"] == 1

    summary = import_roster(db, body, read_roster("r.csv", ROSTER.encode("utf-8")), "r.csv")
    db.commit()
    assert summary == {"added": 3, "updated": 0, "left_office": 0, "in_office": 3}
    assert members_of(db, body) == {
        "1001": ("张三", "城关代表团", "A01", "C1001", True),
        "1002": ("李四", "城关代表团", "A02", None, True),
        "1003": ("王五", "城东代表团", "B01", "C1003", True),
    }

    second = ("代表证号,姓名,代表团,座位号\n"
              "1001,张三,城西代表团,A05\n"
              "1004,赵六,城东代表团,B02\n").encode("gbk")
    summary = import_roster(db, body, read_roster("r2.csv", second), "r2.csv")
    db.commit()
    assert summary == {"added": 1, "updated": 1, "left_office": 2, "in_office": 2}
    assert members_of(db, body) == {
        "1001": ("张三", "城西代表团", "A05", None, True),
        "1002": ("李四", "城关代表团", "A02", None, False),
        "1003": ("王五", "城东代表团", "B01", "C1003", False),
        "1004": ("赵六", "城东代表团", "B02", None, True),
    }
    # the other body's roster is untouched
    assert members_of(db, other) == {"1001": ("别人", None, None, None, True)}

    # a member back in the file returns to office; those already out are not counted again
    third = "代表证号,姓名\n1002,李四\n".encode("utf-8")
    summary = import_roster(db, body, read_roster("r3.csv", third), "r3.csv")
    db.commit()
    assert summary == {"added": 0, "updated": 1, "left_office": 2, "in_office": 1}
    in_office = {k for k, v in members_of(db, body).items() if v[4]}
    assert in_office == {"1002"}

    events = list(db.scalars(select(AuditEvent).where(AuditEvent.kind == "roster_imported")
                             .order_by(AuditEvent.seq)))
    assert len(events) == 4
    last = json.loads(events[-1].data)
    assert last == {"body_id": body.id, "source": "r3.csv", "added": 0, "updated": 1,
                    "left_office": 2, "in_office": 1}


def test_refused_file_changes_nothing(db):
    body = create_body(db, "某县人民代表大会", "congress")
    import_roster(db, body, read_roster("r.csv", ROSTER.encode("utf-8")), "r.csv")
    db.commit()
    before = members_of(db, body)
    n_events = len(list(db.scalars(select(AuditEvent))))
    bad = ("代表证号,姓名\n"
           "1001,张三改\n"
           "1009,新人\n"
           "1009,重复\n").encode("utf-8")
    with pytest.raises(InvalidInput) as ei:
        import_roster(db, body, read_roster("bad.csv", bad), "bad.csv")
    assert ei.value.where == "bad.csv: row 4, column 代表证号"
    db.rollback()
    assert members_of(db, body) == before
    assert len(list(db.scalars(select(AuditEvent)))) == n_events
