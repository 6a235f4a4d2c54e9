"""Issue #16 item 5: bad input never reaches a 500. Each finding from the live server is a test:
the answer is a 4xx naming what is wrong and where, and nothing changes. The same on SQLite and
PostgreSQL (lengths and NUL are checked before the database sees them)."""
from __future__ import annotations

import io
import time
import zipfile

import pytest
from console_support import token
from helpers_live import setup_sitting
from openpyxl import Workbook
from sqlalchemy import func, select

from ballot_service.errors import InvalidInput
from ballot_service.formats.names import check_name
from ballot_service.formats.roster import MAX_SHEET_ROWS, MAX_XLSX_UNPACKED, read_roster
from ballot_service.models import AuditEvent, Item, Member, Terminal
from ballot_service.web.common import MAX_DEPTH, parse_json_object

DEEP = b'{"a":' * 5000 + b"1" + b"}" * 5000
DEEP_LIST = b'{"members":' + b"[" * 30000 + b"]" * 30000 + b"}"


def errors(resp) -> list[dict]:
    return resp.get_json()["errors"]


def events(app) -> int:
    db = app.extensions["ballot_sessionmaker"]()
    try:
        return db.scalar(select(func.count()).select_from(AuditEvent))
    finally:
        db.close()


def count(app, model) -> int:
    db = app.extensions["ballot_sessionmaker"]()
    try:
        return db.scalar(select(func.count()).select_from(model))
    finally:
        db.close()


# --- deeply nested JSON -------------------------------------------------------------------

def test_parser_names_where_the_nesting_is_too_deep():
    with pytest.raises(InvalidInput) as e:
        parse_json_object(b'{"terminals": [{"name": ' + b"[" * 40 + b"]" * 40 + b"}]}")
    assert "nested too deeply at $.terminals[0].name" in e.value.message
    assert str(MAX_DEPTH) in e.value.message
    for ok in (b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', b'{"a": ' + b"[" * 31 + b"]" * 31 + b"}"):
        parse_json_object(ok)  # brackets in strings do not count; 32 levels are allowed


def test_parser_stays_fast_on_hostile_bodies():
    t0 = time.monotonic()
    # 320,000 escaped quotes: a scan that restarts at every quote would take minutes; linear is milliseconds
    for body in (b'{"x":"' + b'\\"' * 320_000 + b"[" * 40, b"[" * 40 + b'"' + b'\\"' * 320_000, DEEP, DEEP_LIST):
        with pytest.raises(InvalidInput):
            parse_json_object(body)
    assert time.monotonic() - t0 < 5


def test_deep_json_on_the_unauthenticated_endpoints(client):
    for path in ("/api/admin/login", "/api/terminal/cast"):
        for body in (DEEP, DEEP_LIST):
            r = client.post(path, data=body, content_type="application/json",
                            headers={"Authorization": "Bearer x"} if "terminal" in path else {})
            assert r.status_code in (400, 401), (path, r.status_code)
    r = client.post("/api/admin/login", data=DEEP, content_type="application/json")
    assert r.status_code == 400 and "nested too deeply" in errors(r)[0]["message"]


def test_deep_json_on_every_endpoint_is_never_a_server_error(app, api):
    s = setup_sitting(api, members=3)
    cred = s.creds[s.present[0]]
    ids = {"body_id": s.body_id, "sitting_id": s.sitting_id, "item_id": s.item_id,
           "terminal_id": s.terminal_ids[s.members[-1]]}
    paths = {"/api/terminal/cast"} | {r.rule for r in app.url_map.iter_rules()
                                      if r.rule.startswith("/api/") and "POST" in r.methods}
    for rule in sorted(paths):
        url = rule
        for k, v in ids.items():
            url = url.replace(f"<int:{k}>", str(v))
        before = events(app)
        headers = {"Authorization": f"Bearer {s.station if '/station/' in url else cred}"} \
            if url.startswith(("/api/terminal/", "/api/station/")) else {}
        r = api.client.post(url, data=DEEP, content_type="application/json", headers=headers)
        assert r.status_code < 500, (url, r.status_code, r.get_data(as_text=True)[:300])
        if r.status_code == 400:
            # the scans upload takes a PDF or image, never JSON: refused for its type
            expected = "Content-Type must be one of" if url == "/api/station/scans" else "nested too deeply"
            assert expected in errors(r)[0]["message"], url
            assert events(app) == before, url


# --- ids and numbers ----------------------------------------------------------------------

def test_huge_ids_in_routes_are_404(api):
    setup_sitting(api, members=2, open_vote=False)
    for url in ("/api/admin/items/9223372036854775808/open", "/api/admin/items/9007199254740992/open",
                "/api/admin/bodies/2147483648/key", "/api/admin/items/2147483648/open",
                "/api/admin/sessions/99999999999999999999999/close", "/api/admin/terminals/0/revoke"):
        r = api.client.post(url)
        assert r.status_code == 404, url
    r = api.client.get("/api/admin/sessions/9223372036854775808/attendance")
    assert r.status_code == 404


def test_huge_ids_and_numbers_in_json_are_400(api):
    s = setup_sitting(api, members=2, open_vote=False)
    r = api.client.post("/api/admin/sessions", json={"body_id": 2 ** 63, "name": "x"})
    assert r.status_code == 400 and "2^53" in errors(r)[0]["message"]
    r = api.client.post("/api/admin/sessions", json={"body_id": 2 ** 31, "name": "x"})
    assert r.status_code == 400 and "at most 2147483647" in errors(r)[0]["message"]
    r = api.client.post("/api/admin/sessions", json={"body_id": 0, "name": "x"})
    assert r.status_code == 400 and errors(r)[0]["where"] == "body_id"
    r = api.client.post(f"/api/admin/sessions/{s.sitting_id}/screen", json={"show": "result", "item_id": -1})
    assert r.status_code == 400 and errors(r)[0]["where"] == "item_id"
    r = api.client.post("/api/admin/login", data=b'{"username": NaN, "password": "x"}', content_type="application/json")
    assert r.status_code == 400
    r = api.client.post("/api/admin/login", data=b'{"username": 1e999, "password": "x"}', content_type="application/json")
    assert r.status_code == 400


# --- types ----------------------------------------------------------------------------------

def test_non_string_candidate_keys_are_400(app, api):
    s = setup_sitting(api, members=2, open_vote=False)
    before = count(app, Item)
    for key in (1, {"a": 1}, ["a"], True):
        r = api.client.post(f"/api/admin/sessions/{s.sitting_id}/items", json={
            "key": "p", "kind": "livelihood_projects", "title": "t", "places": 1,
            "candidates": [{"key": key, "title": "甲"}, {"key": "b", "title": "乙"}]})
        assert r.status_code == 400, key
        assert errors(r)[0]["where"] == "candidates[0].key"
    r = api.client.post(f"/api/admin/sessions/{s.sitting_id}/items", json={
        "key": "p", "kind": "resolution", "title": "t", "rule": {"base": ["members"]}})
    assert r.status_code == 400 and errors(r)[0]["where"] == "rule.base"
    assert count(app, Item) == before


def test_roster_group_and_seat_of_the_wrong_type_are_400(app, api):
    s = setup_sitting(api, members=2, open_vote=False)
    before = count(app, Member)
    for bad in (5, {"x": 1}, [1], True):
        r = api.client.post(f"/api/admin/bodies/{s.body_id}/roster", json={"members": [
            {"id": "1", "name": "张三", "group": bad}, {"id": "2", "name": "李四", "seat": bad}]})
        assert r.status_code == 400
        assert [e["where"] for e in errors(r)] == ["members[0].group", "members[1].seat"]
    assert count(app, Member) == before


def test_json_roster_gets_the_file_checks_and_every_error(app, api):
    s = setup_sitting(api, members=2, open_vote=False)
    r = api.client.post(f"/api/admin/bodies/{s.body_id}/roster", json={"members": [
        {"id": "1", "name": "张三", "seat": "A1"}, {"id": "2", "name": "李" * 101, "seat": "A1"},
        {"id": "1", "name": "王五"}, {"id": "3", "name": "赵\u202e六"}]})
    assert r.status_code == 400
    wheres = [e["where"] for e in errors(r)]
    assert wheres == ["members[1].name", "members[1].seat", "members[2].id", "members[3].name"]
    assert "at most 100" in errors(r)[0]["message"]
    assert count(app, Member) == 2


# --- files ----------------------------------------------------------------------------------

def test_csv_field_over_the_csv_modules_limit_is_400_with_its_row(api):
    s = setup_sitting(api, members=2, open_vote=False)
    data = ("代表证号,姓名\n1,张三\n2," + "x" * 140_000 + "\n").encode("utf-8")
    r = api.client.post(f"/api/admin/bodies/{s.body_id}/roster", headers={"X-CSRFToken": token(api.client)},
                        data={"file": (io.BytesIO(data), "roster.csv")}, content_type="multipart/form-data")
    assert r.status_code == 400
    assert errors(r)[0]["where"] == "roster.csv: row 3"
    data = ("代表证号,姓名\n1,张三\n2," + "x" * 5000 + "\n").encode("utf-8")
    with pytest.raises(InvalidInput) as e:
        read_roster("r.csv", data)
    assert e.value.where == "r.csv: row 3, column 姓名"


def _sheet_xlsx(sheet_xml: str) -> bytes:
    """A minimal .xlsx with one sheet (inline strings), built by hand."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxml'
                   'formats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
                   '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument'
                   '.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType='
                   '"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>')
        z.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
                   'officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        z.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/'
                   'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
                   'relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.'
                   'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
                   'openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
                   '</Relationships>')
        z.writestr("xl/worksheets/sheet1.xml", '<?xml version="1.0"?><worksheet xmlns="http://schemas.'
                   'openxmlformats.org/spreadsheetml/2006/main"><dimension ref="A1:B1048576"/><sheetData>'
                   + sheet_xml + "</sheetData></worksheet>")
    return buf.getvalue()


def _cell(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def test_xlsx_with_a_million_rows_is_refused_early():
    """Was: a 297 KB .xlsx of a million rows kept a worker busy 78.5 s (~190 MB)."""
    header = f'<row r="1">{_cell("A1", "代表证号")}{_cell("B1", "姓名")}</row>'
    dense = header + "".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c></row>' for i in range(2, 600_001))
    gap = header + f'<row r="1048576">{_cell("A1048576", "1")}</row>'
    for xml in (dense, gap):
        data = _sheet_xlsx(xml)
        t0 = time.monotonic()
        with pytest.raises(InvalidInput) as e:
            read_roster("big.xlsx", data)
        assert time.monotonic() - t0 < 10
        assert f"more than {MAX_SHEET_ROWS} rows" in e.value.message
    # a million rows of this kind unpack to more than the XML an .xlsx may hold: refused before parsing
    million = header + "".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c></row>' for i in range(2, 1_100_001))
    with pytest.raises(InvalidInput) as e:
        read_roster("big.xlsx", _sheet_xlsx(million))
    assert f"at most {MAX_XLSX_UNPACKED} are read" in e.value.message


def test_xlsx_is_read_streaming_and_checked_like_csv():
    wb = Workbook()
    ws = wb.active
    for row in (["代表证号", "姓名", "座位号"], [1, "张三", "A1"], [2, "李\u200b四", "A1"]):
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    with pytest.raises(InvalidInput) as e:
        read_roster("r.xlsx", buf.getvalue())
    assert [p.where for p in e.value.problems] == ["r.xlsx: row 3, column 姓名", "r.xlsx: row 3, column 座位号"]
    assert "U+200B" in e.value.problems[0].message


# --- names ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["张\x00三", "张\u200b三", "张\u202e三", "张\ufeff三", "张\u2066三", "张\u2028三",
                                 "张\ue000三", "张\t三"])
def test_names_with_control_invisible_or_bidi_characters_are_refused(app, api, bad):
    s = setup_sitting(api, members=2, open_vote=False)
    before = events(app)
    checks = [
        ("/api/admin/bodies", {"name": bad, "kind": "congress"}, "name"),
        ("/api/admin/sessions", {"body_id": s.body_id, "name": bad}, "name"),
        (f"/api/admin/sessions/{s.sitting_id}/items", {"key": bad, "kind": "resolution", "title": "t"}, "key"),
        (f"/api/admin/sessions/{s.sitting_id}/items", {"key": "k", "kind": "resolution", "title": bad}, "title"),
        (f"/api/admin/sessions/{s.sitting_id}/items", {"key": "k", "kind": "appointment", "title": "t",
                                                       "candidates": [{"key": "a", "title": bad}]},
         "candidates[0].title"),
        (f"/api/admin/bodies/{s.body_id}/roster", {"members": [{"id": "1", "name": bad}]}, "members[0].name"),
        (f"/api/admin/sessions/{s.sitting_id}/terminals", {"terminals": [{"name": bad}]}, "terminals[0].name"),
    ]
    for url, body, where in checks:
        r = api.client.post(url, json=body)
        assert r.status_code == 400, (url, r.status_code)
        assert errors(r)[0]["where"] in (where, "body"), (url, errors(r))
    assert events(app) == before


def test_names_are_nfc_and_keep_the_middle_dot(api):
    s = setup_sitting(api, members=2, open_vote=False)
    r = api.client.post(f"/api/admin/bodies/{s.body_id}/roster", json={"members": [
        {"id": "1", "name": "阿卜杜·艾力"}, {"id": "2", "name": "Jose\u0301"}]})
    assert r.status_code == 201
    assert check_name("Jose\u0301", what="n", where="n", max_len=10) == "Jos\u00e9"
    assert check_name(" 阿卜杜·艾力 ", what="n", where="n", max_len=10) == "阿卜杜·艾力"


def test_lengths_are_refused_before_the_database(app, api):
    s = setup_sitting(api, members=2, open_vote=False)
    terminals_before = count(app, Terminal)
    before = count(app, Item)
    r = api.client.post(f"/api/admin/sessions/{s.sitting_id}/items",
                        json={"key": "k" * 65, "kind": "resolution", "title": "t"})
    assert r.status_code == 400 and errors(r)[0]["where"] == "key" and "at most 64" in errors(r)[0]["message"]
    r = api.client.post(f"/api/admin/sessions/{s.sitting_id}/items", json={
        "key": "k", "kind": "appointment", "title": "t", "candidates": [{"key": "c" * 65, "title": "x"}]})
    assert r.status_code == 400 and errors(r)[0]["where"] == "candidates[0].key"
    r = api.client.post(f"/api/admin/sessions/{s.sitting_id}/terminals", json={"terminals": [
        {"name": "t", "seat": "s" * 33}]})
    assert r.status_code == 400 and errors(r)[0]["where"] == "terminals[0].seat"
    r = api.client.post(f"/api/admin/sessions/{s.sitting_id}/attendance", json={"members": ["x" * 65]})
    assert r.status_code == 400 and errors(r)[0]["where"] == "members[0]"
    assert count(app, Item) == before
    assert count(app, Terminal) == terminals_before


@pytest.mark.parametrize("limit", [-60, 0, 86401, 2 ** 40])
def test_time_limit_must_be_positive_and_bounded(app, api, limit):
    s = setup_sitting(api, members=2, open_vote=False)
    before = count(app, Item)
    r = api.client.post(f"/api/admin/sessions/{s.sitting_id}/items",
                        json={"key": "k", "kind": "resolution", "title": "t", "time_limit_s": limit})
    assert r.status_code == 400 and errors(r)[0]["where"] == "time_limit_s"
    assert count(app, Item) == before


def test_integers_beyond_the_database_integer_are_400_on_every_field(api):
    """Found by the fuzzer on PostgreSQL: a station's item_id of 2^31 was a 500."""
    s = setup_sitting(api, members=2, open_vote=False)
    r = api.client.post("/api/station/tally-sheet", headers={"Authorization": f"Bearer {s.station}"},
                        json={"item_id": 2 ** 31, "teller": "t", "sheet": {"issued": 0, "returned": 0,
                                                                         "invalid": 0, "counts": {}}})
    assert r.status_code == 400 and errors(r)[0]["where"] == "item_id"


def test_nul_and_lone_surrogates_are_refused_anywhere_in_a_body(api):
    s = setup_sitting(api, members=2, open_vote=False)
    for body in (b'{"members": ["\\ud800"]}', b'{"members": ["M\\u00000001"]}', b'{"\\udfff": 1, "members": []}'):
        r = api.client.post(f"/api/admin/sessions/{s.sitting_id}/attendance", data=body,
                            content_type="application/json")
        assert r.status_code == 400, body
    r = api.client.post("/api/admin/login", data=b'{"username": "\\ud800", "password": "x"}',
                        content_type="application/json")
    assert r.status_code == 400 and errors(r)[0]["where"] == "username"
