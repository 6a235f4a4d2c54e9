"""Printed paper ballots: the PDF renders, its QR code decodes to a valid token, the text is
Chinese. Needs poppler-utils (pdftoppm, pdftotext) and zbar-tools (zbarimg); skips without."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ballot_service.domain.paper_ballots import create_paper_ballots
from ballot_service.domain.sittings import create_body, create_item, create_sitting
from ballot_service.errors import InvalidInput
from ballot_service.formats.ballots import (
    BallotRefused,
    serial_short,
    text_to_token,
    token_to_text,
    verify_token,
)
from ballot_service.models import Round
from ballot_service.render import fonts, paper
from ballot_service.render.fonts import FontNotFound, find_font
from ballot_service.render.paper import (
    BallotLayout,
    print_paper_ballots,
    write_ballot_pdfs,
)

TITLE = "2025年示范市民生实事项目人大代表票决"


def _need(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install poppler-utils zbar-tools)")


def _need_font():
    try:
        find_font()
    except FontNotFound as exc:
        pytest.skip(exc.message)


@pytest.fixture
def item(db):
    body = create_body(db, "示范市第十七届人民代表大会", "congress")
    sitting = create_sitting(db, body, "第四次会议")
    it = create_item(db, sitting, key="projects", kind="livelihood_projects", title=TITLE, places=15,
                     candidates=[{"key": f"p{i}", "title": f"候选项目{i}：老旧小区改造与加装电梯"} for i in range(1, 21)],
                     channel="paper")
    db.flush()
    return it


def _ctx(item, round_no=1):
    return {"body": item.sitting.body_id, "session": item.sitting_id, "item": item.id, "round_no": round_no}


def test_printed_qr_decodes_and_verifies(db, item, body_key, settings_env, tmp_path):
    _need("pdftoppm", "zbarimg", "pdftotext")
    _need_font()
    round_ = item.rounds[0]
    tokens = create_paper_ballots(db, body_key, item, round_, 2)
    out = Path(settings_env["BALLOT_BALLOTS_DIR"])
    paths = print_paper_ballots(item, round_, tokens, out, key_fingerprint=body_key.fingerprint, processes=1)
    assert len(paths) == 1 and paths[0].stat().st_size > 0

    png_prefix = tmp_path / "page"
    subprocess.run(["pdftoppm", "-r", "150", "-f", "2", "-l", "2", "-png", str(paths[0]), str(png_prefix)],
                   check=True, timeout=60)
    png = next(tmp_path.glob("page*.png"))
    res = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    decoded = res.stdout.strip()
    assert decoded == token_to_text(tokens[1])
    payload = verify_token(body_key.public_key, text_to_token(decoded), **_ctx(item))
    assert payload["serial"] == tokens[1]["payload"]["serial"]

    # a one-character change of the scanned text is refused
    i = len("BS1.") + 20
    changed = decoded[:i] + ("A" if decoded[i] != "A" else "B") + decoded[i + 1:]
    with pytest.raises(BallotRefused) as exc:
        verify_token(body_key.public_key, text_to_token(changed), **_ctx(item))
    assert exc.value.reason in ("malformed", "forged")

    text = subprocess.run(["pdftotext", "-enc", "UTF-8", "-f", "2", "-l", "2", str(paths[0]), "-"],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert TITLE in text
    assert "示范市第十七届人民代表大会第四次会议" in text
    assert "赞成的项目不得超过15项，超过的本票无效" in text
    assert "不划的视为弃权" in text
    # A secret ballot prints no serial a desk could note beside a name (issue #15): the QR only.
    assert item.secret and "票号 " not in text
    assert serial_short(tokens[1]["payload"]["serial"]).replace(" ", "") not in text.replace(" ", "")
    assert body_key.fingerprint in text
    assert "候选项目20" in text
    assert "第2轮" not in text

    item.secret = False  # a named (记名) ballot prints it for people
    named = print_paper_ballots(item, round_, tokens, tmp_path / "named", key_fingerprint=body_key.fingerprint,
                                processes=1)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", "-f", "2", "-l", "2", str(named[0]), "-"],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert serial_short(tokens[1]["payload"]["serial"]) in text


def test_runoff_ballot_says_round(db, item, body_key, tmp_path):
    _need("pdftotext")
    _need_font()
    r2 = Round(item_id=item.id, number=2, places=1, candidate_keys=["p3", "p7"], status="pending")
    db.add(r2)
    db.flush()
    tokens = create_paper_ballots(db, body_key, item, r2, 1)
    paths = print_paper_ballots(item, r2, tokens, tmp_path, processes=1)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(paths[0]), "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    assert "第2轮" in text
    assert "赞成的项目不得超过1项" in text
    assert "候选项目3" in text and "候选项目7" in text and "候选项目1：" not in text


def _layout(n=3, **over):
    base = dict(body_name="示范市人民代表大会常务委员会", sitting_name="第三十次会议", item_title="任命案",
                kind="appointment", round_number=1, candidates=tuple(f"人选{i}" for i in range(n)))
    return BallotLayout(**{**base, **over})


def test_instructions_by_kind():
    assert not any("不得超过" in s for s in _layout().instructions())
    lines = _layout(kind="livelihood_projects", places=10).instructions()
    assert any("赞成的项目不得超过10项，超过的本票无效" in s for s in lines)
    assert lines[0].endswith("在“赞成”“反对”“弃权”中任选一项划“○”，不划的视为弃权，多划或无法辨认的该项无效。")
    assert "第3轮" in _layout(round_number=3).ballot_label()


def test_split_into_files_in_parallel(tmp_path):
    _need_font()
    pairs = [(f"BS1.test{i}", f"{i:04d} 0000") for i in range(5)]
    seen = []
    paths = write_ballot_pdfs(_layout(), pairs, tmp_path, "batch", pages_per_file=2, processes=2,
                              progress=seen.append)
    assert [p.name for p in paths] == ["batch-part01.pdf", "batch-part02.pdf", "batch-part03.pdf"]
    assert sorted(seen) == [1, 2, 2]
    with pytest.raises(InvalidInput, match="refusing to overwrite"):
        write_ballot_pdfs(_layout(), pairs, tmp_path, "batch", pages_per_file=2, processes=1)
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(paths[0])], capture_output=True, text=True, check=True).stdout
        assert "Pages:           2" in info and "A4" in info


def test_long_titles_are_fitted_and_too_many_candidates_refused(tmp_path):
    _need_font()
    long = _layout(candidates=("非常长的候选项目名称" * 10, "短"))
    write_ballot_pdfs(long, [("BS1.x", "0000 0000")], tmp_path, "long", processes=1)
    with pytest.raises(InvalidInput, match="do not fit"):
        write_ballot_pdfs(_layout(n=paper.MAX_CANDIDATES_PER_PAGE + 1), [("BS1.x", "0000 0000")], tmp_path, "many",
                          processes=1)


def test_missing_font_names_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv("BALLOT_FONT", raising=False)
    monkeypatch.setattr(fonts, "FONT_CANDIDATES", ("/nonexistent/font.ttc",))
    monkeypatch.setattr(fonts, "PACKAGE_FONTS", tmp_path / "no-fonts")
    with pytest.raises(FontNotFound, match="apt-get install fonts-wqy-zenhei"):
        find_font()
    with pytest.raises(FontNotFound):
        write_ballot_pdfs(_layout(), [("BS1.x", "0000 0000")], tmp_path, "f", processes=1)


def test_batch_prefix_increments(tmp_path):
    assert paper.next_batch_prefix(tmp_path, 4, 1) == "item4-round1-batch1"
    (tmp_path / "item4-round1-batch1-part01.pdf").write_bytes(b"")
    (tmp_path / "item4-round1-batch2-part01.pdf").write_bytes(b"")
    assert paper.next_batch_prefix(tmp_path, 4, 1) == "item4-round1-batch3"
    assert paper.next_batch_prefix(tmp_path, 4, 2) == "item4-round2-batch1"
