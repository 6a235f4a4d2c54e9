"""Public /verify/<record_id>: says whether a record is genuine, and shows it."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from scenario_support import SCENARIOS
from sqlalchemy import create_engine, text

from ballot_service import create_app
from ballot_service.rehearsal import rehearse


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify")
    rehearse(SCENARIOS / "livelihood-basic.json", out)
    return out


@pytest.fixture
def page(run, tmp_path):
    url = f"sqlite:///{run / '.work' / 'rehearsal.sqlite3'}"
    app = create_app({"BALLOT_DATABASE_URL": url, "BALLOT_KEYS_DIR": str(run / ".work" / "keys"),
                      "BALLOT_INSTANCE_PATH": str(tmp_path), "BALLOT_SECRET_KEY": "x",
                      "BALLOT_KEY_PASSPHRASE": (run / ".work" / "passphrase").read_text(encoding="utf-8")})
    app.config["TESTING"] = True
    engine = create_engine(url)
    with engine.connect() as c:
        rid, body_json = c.execute(text("select id, body_json from records")).one()
    yield app.test_client(), rid, body_json, engine
    with engine.begin() as c:  # undo any tampering
        c.execute(text("update records set body_json = :b where id = :i"), {"b": body_json, "i": rid})
    engine.dispose()
    app.extensions["ballot_engine"].dispose()


def test_genuine_record_is_shown(page):
    client, rid, body_json, _ = page
    resp = client.get(f"/verify/{rid}")  # no login: public
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'data-genuine="true"' in html and "真实有效" in html
    # A Chinese page names the record by its kind, and shows no stored word and no English.
    assert "票决结果" in html and "决议记录" not in html
    for word in ("Genuine", "decided", "terminal", "paper", "livelihood_projects", "Record verification"):
        assert word not in html, word
    assert "Genuine" in client.get(f"/verify/{rid}?lang=en").get_data(as_text=True)
    content = json.loads(body_json)
    assert content["body"]["name"] in html and content["session"]["name"] in html
    assert content["item"]["title"] in html
    for t in content["selected_titles"]:
        assert t in html
    assert f'<td class="n">{content["result"]["issued"]}</td>' in html


def test_tampered_record_is_not_genuine(page):
    client, rid, body_json, engine = page
    forged = body_json.replace('"for":', '"for":1', 1)
    with engine.begin() as c:
        c.execute(text("update records set body_json = :b where id = :i"), {"b": forged, "i": rid})
    html = client.get(f"/verify/{rid}").get_data(as_text=True)
    assert 'data-genuine="false"' in html and "签名无效" in html


def test_record_under_another_key_is_not_genuine(page, run):
    client, rid, _, _ = page
    pub = run / ".work" / "keys" / "body-1.pub.pem"
    saved = pub.read_bytes()
    try:
        pub.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        html = client.get(f"/verify/{rid}").get_data(as_text=True)
        assert 'data-genuine="false"' in html
    finally:
        pub.write_bytes(saved)


def test_unknown_record_is_404(page):
    client, *_ = page
    resp = client.get("/verify/doesnotexist")
    assert resp.status_code == 404
    assert "未找到" in resp.get_data(as_text=True)
