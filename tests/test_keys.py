"""Signing keys: creation, loading, every key-file error, fingerprints, verification."""
from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from ballot_service.cli import main
from ballot_service.config import Settings
from ballot_service.crypto import keys
from ballot_service.crypto.keys import (
    SignatureInvalid,
    body_key_name,
    create_key,
    fingerprint,
    load_key,
    load_public_key,
    verify_signature,
)
from ballot_service.db import make_engine, make_sessionmaker
from ballot_service.domain.sittings import create_body
from ballot_service.errors import KeyFileError
from ballot_service.migrate import upgrade


@pytest.fixture
def keys_dir(settings_env) -> Path:
    keys.clear_cache()
    return Path(settings_env["BALLOT_KEYS_DIR"])


def test_create_writes_encrypted_0600_key_and_public_pem(keys_dir):
    k = create_key(keys_dir, "body-1", "secret pass")
    priv = keys_dir / "body-1.key.pem"
    pub = keys_dir / "body-1.pub.pem"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert priv.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert pub.read_bytes() == k.public_pem
    assert b"PRIVATE" not in pub.read_bytes()
    assert "secret pass" not in repr(k)


def test_fingerprint_is_short_grouped_sha256_of_raw_public_key(keys_dir):
    k = create_key(keys_dir, "body-1", "pw")
    raw = k.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    h = hashlib.sha256(raw).hexdigest()
    assert k.fingerprint == f"{h[0:4]} {h[4:8]} {h[8:12]} {h[12:16]}"
    assert fingerprint(load_public_key(keys_dir / "body-1.pub.pem")) == k.fingerprint
    assert fingerprint(load_public_key(k.public_pem)) == k.fingerprint
    assert fingerprint(load_public_key(k.public_pem.decode())) == k.fingerprint


def test_load_signs_and_verifies(keys_dir):
    created = create_key(keys_dir, "body-7", "pw")
    k = load_key(keys_dir, "body-7", "pw")
    assert k.name == "body-7" and k.fingerprint == created.fingerprint
    sig = k.sign(b"hello")
    assert verify_signature(created.public_key, sig, b"hello") is None
    with pytest.raises(SignatureInvalid):
        verify_signature(created.public_key, sig, b"hellO")
    with pytest.raises(SignatureInvalid):
        verify_signature(created.public_key, sig[:-1] + bytes([sig[-1] ^ 1]), b"hello")
    with pytest.raises(SignatureInvalid):
        verify_signature(created.public_key, b"short", b"hello")
    other = create_key(keys_dir, "body-8", "pw")
    with pytest.raises(SignatureInvalid):
        verify_signature(other.public_key, sig, b"hello")


def test_loaded_keys_are_cached(keys_dir):
    create_key(keys_dir, "body-1", "pw")
    assert load_key(keys_dir, "body-1", "pw") is load_key(keys_dir, "body-1", "pw")


def test_body_key_name():
    assert body_key_name(12) == "body-12"


def test_overwrite_refused(keys_dir):
    first = create_key(keys_dir, "body-1", "pw")
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        create_key(keys_dir, "body-1", "pw")
    assert load_key(keys_dir, "body-1", "pw").fingerprint == first.fingerprint


def test_create_without_passphrase_refused(keys_dir):
    with pytest.raises(KeyFileError, match="BALLOT_KEY_PASSPHRASE"):
        create_key(keys_dir, "body-1", "")
    assert not (keys_dir / "body-1.key.pem").exists()


def test_bad_key_name_refused(keys_dir):
    with pytest.raises(KeyFileError):
        create_key(keys_dir, "../evil", "pw")


def test_missing_key_says_which_command_creates_it(keys_dir):
    with pytest.raises(KeyFileError, match=r"ballot-service keys create 3"):
        load_key(keys_dir, "body-3", "pw")


def test_passphrase_unset(keys_dir):
    create_key(keys_dir, "body-1", "pw")
    for empty in (None, ""):
        with pytest.raises(KeyFileError, match="set BALLOT_KEY_PASSPHRASE"):
            load_key(keys_dir, "body-1", empty)


def test_wrong_passphrase(keys_dir):
    create_key(keys_dir, "body-1", "right")
    load_key(keys_dir, "body-1", "right")  # cached: a wrong passphrase must still fail
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_key(keys_dir, "body-1", "wrong")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "swapped_pub"])
def test_corrupted_key_file(keys_dir, damage):
    create_key(keys_dir, "body-1", "pw")
    priv = keys_dir / "body-1.key.pem"
    data = priv.read_bytes()
    if damage == "garbage":
        priv.write_bytes(b"not a key at all\n")
    elif damage == "truncated":
        priv.write_bytes(data[:120])
    elif damage == "empty":
        priv.write_bytes(b"")
    else:
        other = create_key(keys_dir, "body-2", "pw")
        (keys_dir / "body-1.pub.pem").write_bytes(other.public_pem)
    keys.clear_cache()
    with pytest.raises(KeyFileError, match="restore") as exc:
        load_key(keys_dir, "body-1", "pw")
    assert "wrong passphrase" not in exc.value.message


def test_public_key_errors(keys_dir, tmp_path):
    with pytest.raises(KeyFileError, match="keys create 5"):
        load_public_key(keys_dir / "body-5.pub.pem")
    bad = tmp_path / "bad.pub.pem"
    bad.write_text("nonsense")
    with pytest.raises(KeyFileError, match="not a valid PEM"):
        load_public_key(bad)


def _seed_body(settings_env):
    upgrade(settings_env["BALLOT_DATABASE_URL"])
    engine = make_engine(Settings.from_env(settings_env).database_url)
    with make_sessionmaker(engine)() as db:
        body = create_body(db, "示范市人民代表大会常务委员会", "standing_committee")
        db.commit()
        body_id = body.id
    engine.dispose()
    return body_id


def test_cli_keys_create_and_show(settings_env, keys_dir):
    body_id = _seed_body(settings_env)
    runner = CliRunner()
    r = runner.invoke(main, ["keys", "create", str(body_id)], env=settings_env)
    assert r.exit_code == 0, r.output
    fp = load_key(keys_dir, f"body-{body_id}", "test-passphrase").fingerprint
    assert fp in r.output
    r = runner.invoke(main, ["keys", "show", str(body_id)], env=settings_env)
    assert r.exit_code == 0 and fp in r.output and f"body-{body_id}.pub.pem" in r.output
    r = runner.invoke(main, ["keys", "create", str(body_id)], env=settings_env)
    assert r.exit_code != 0 and "refusing to overwrite" in r.output
    r = runner.invoke(main, ["keys", "create", str(body_id)], env={**settings_env, "BALLOT_KEY_PASSPHRASE": ""})
    assert r.exit_code != 0 and "BALLOT_KEY_PASSPHRASE" in r.output
    r = runner.invoke(main, ["keys", "show", "99"], env=settings_env)
    assert r.exit_code != 0 and "keys create 99" in r.output


def test_a_wrong_passphrase_that_happens_to_unpad_is_still_named_a_wrong_passphrase(keys_dir):
    """About one wrong passphrase in 256 decrypts PKCS#8's AES-CBC to valid padding, and the
    key's parse then fails with another ValueError; that is reported as a wrong passphrase (or
    damage), not as a corrupted file (ops doctor once said "corrupted" for a wrong one)."""
    create_key(keys_dir, "body-1", "right")
    data = (keys_dir / "body-1.key.pem").read_bytes()
    for n in range(20_000):
        try:
            serialization.load_pem_private_key(data, f"wrong-{n}".encode())
        except ValueError as exc:
            if "password" not in str(exc).lower():
                break
    else:
        pytest.fail("no wrong passphrase in 20,000 unpadded")
    keys.clear_cache()
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_key(keys_dir, "body-1", f"wrong-{n}")
