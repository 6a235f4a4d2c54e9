"""A body's own audit bundle (`audit export --body`, the console's zip of a body), verified with
that body's key alone, holding nothing of another body's."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from helpers_live import publish, setup_sitting, vote

from ballot_service.cli import main
from ballot_service.crypto import keys


def _cli(settings_env, *args):
    r = CliRunner().invoke(main, list(args), env=settings_env, catch_exceptions=False)
    return r.exit_code, r.output


def _decided(api):
    s = setup_sitting(api, members=3)
    for no in s.present:
        vote(api, s.creds[no], {"motion": "for"})
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    publish(api, s.item_id)
    return s


def test_a_bodys_bundle_verifies_with_its_key_alone(app, api, settings_env, tmp_path):
    s = _decided(api)
    _, other = api.call("POST", "/api/admin/bodies", {"name": "乙县人民代表大会", "kind": "congress"})
    out = tmp_path / "body-bundle"
    # Two bodies, two chains: the first body's bundle holds none of the other's events.
    code, text = _cli(settings_env, "audit", "export", str(out), "--body", str(s.body_id))
    assert code == 0, text
    everything = "".join(p.read_text(encoding="utf-8", errors="replace") for p in out.rglob("*") if p.is_file())
    assert "乙县" not in everything
    pem = keys.public_path(Path(settings_env["BALLOT_KEYS_DIR"]), keys.body_key_name(s.body_id))
    code, text = _cli(settings_env, "audit", "verify", str(out), "--key", str(pem))
    assert code == 0 and "核验通过" in text, text
    # A session of another body is refused, nothing written.
    out = tmp_path / "mixed"
    code, text = _cli(settings_env, "audit", "export", str(out), "--body", str(other["id"]), "--session",
                      str(s.sitting_id))
    assert code == 2 and not out.exists(), text


def test_with_one_body_its_bundle_is_the_whole_and_verifies_with_its_key(app, api, settings_env, tmp_path):
    s = _decided(api)
    out = tmp_path / "body-bundle"
    code, text = _cli(settings_env, "audit", "export", str(out), "--body", str(s.body_id), "--session",
                      str(s.sitting_id))
    assert code == 0, text
    # The body's published public key, from the keys folder (not from the bundle).
    pem = keys.public_path(Path(settings_env["BALLOT_KEYS_DIR"]), keys.body_key_name(s.body_id))
    code, text = _cli(settings_env, "audit", "verify", str(out), "--key", str(pem))
    assert code == 0 and "核验通过" in text, text
