"""Keys per body (issue 16, item 2): each body's signing key can have its own passphrase
(BALLOT_KEY_PASSPHRASE_<KEY NAME>, or a 0600 file in the instance folder, else the shared
BALLOT_KEY_PASSPHRASE); the app refuses to start naming the body whose key it cannot unlock,
never the key's absolute path, and `doctor` says the same."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ballot_service import create_app
from ballot_service.cli import main
from ballot_service.config import Settings
from ballot_service.crypto import keys
from ballot_service.domain.sittings import create_body
from ballot_service.errors import KeyFileError
from ballot_service.ops import doctor

CITY, TOWNSHIP = "贺州市人民代表大会", "黄田镇人民代表大会"


@pytest.fixture
def two_bodies(app, db, settings_env):
    """The city (body 1, the shared passphrase) and a township (body 2, its own passphrase)."""
    keys.clear_cache()
    city, township = create_body(db, CITY, "congress"), create_body(db, TOWNSHIP, "congress")
    db.commit()
    keys_dir = Path(settings_env["BALLOT_KEYS_DIR"])
    keys.create_key(keys_dir, keys.body_key_name(city.id), settings_env["BALLOT_KEY_PASSPHRASE"])
    keys.create_key(keys_dir, keys.body_key_name(township.id), "township-only")
    return city.id, township.id


def start(env: dict):
    app = create_app(env)
    app.extensions["ballot_engine"].dispose()
    return app


def test_a_body_key_with_its_own_passphrase_variable_unlocks_and_the_app_starts(two_bodies, settings_env):
    city, township = two_bodies
    env = {**settings_env, "BALLOT_KEY_PASSPHRASE_BODY_2": "township-only"}
    start(env)
    settings = Settings.from_env(env)
    assert keys.body_signing_key(settings, township).name == "body-2"
    assert keys.body_signing_key(settings, city).name == "body-1"  # the shared passphrase still serves the city
    assert all(c.ok for c in doctor.check_keys(settings))


def test_the_app_refuses_to_start_naming_the_body_it_cannot_unlock_not_a_path(two_bodies, settings_env, tmp_path):
    with pytest.raises(KeyFileError) as exc:
        start(settings_env)  # the township's key does not open with the city's passphrase
    assert TOWNSHIP in exc.value.message and TOWNSHIP in exc.value.zh and CITY not in exc.value.message
    assert "BALLOT_KEY_PASSPHRASE_BODY_2" in exc.value.message
    assert str(tmp_path) not in exc.value.message + exc.value.zh + (exc.value.where or "")
    [city, township] = doctor.check_keys(Settings.from_env(settings_env))
    assert city.ok and not township.ok and township.fatal and TOWNSHIP in township.zh


def test_a_passphrase_file_in_the_instance_folder_serves_its_key_only_at_mode_0600(two_bodies, settings_env):
    folder = Path(settings_env["BALLOT_INSTANCE_PATH"]) / keys.PASSPHRASE_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    file = folder / "body-2"
    file.write_text("township-only\n")
    os.chmod(file, 0o644)
    with pytest.raises(KeyFileError) as exc:
        start(settings_env)
    assert "passphrases/body-2" in exc.value.message and "0600" in exc.value.message and TOWNSHIP in exc.value.message
    os.chmod(file, 0o600)
    start(settings_env)
    assert keys.passphrase_for(Settings.from_env(settings_env), "body-2") == "township-only"


def test_the_own_variable_wins_over_the_file_and_the_shared_passphrase(settings_env):
    folder = Path(settings_env["BALLOT_INSTANCE_PATH"]) / keys.PASSPHRASE_DIR
    folder.mkdir(mode=0o700, parents=True)
    (folder / "body-3").write_text("from-file")
    os.chmod(folder / "body-3", 0o600)
    settings = Settings.from_env({**settings_env, "BALLOT_KEY_PASSPHRASE_BODY_3": "from-variable"})
    assert keys.passphrase_for(settings, "body-3") == "from-variable"
    assert keys.passphrase_for(Settings.from_env(settings_env), "body-3") == "from-file"
    assert keys.passphrase_for(settings, "body-4") == settings_env["BALLOT_KEY_PASSPHRASE"]


def test_keys_create_uses_the_bodys_own_passphrase(app, db, settings_env):
    keys.clear_cache()
    create_body(db, CITY, "congress")
    db.commit()
    env = {k: v for k, v in settings_env.items() if k != "BALLOT_KEY_PASSPHRASE"}
    result = CliRunner().invoke(main, ["keys", "create", "1"], env={**env, "BALLOT_KEY_PASSPHRASE": "",
                                                                  "BALLOT_KEY_PASSPHRASE_BODY_1": "city-own"})
    assert result.exit_code == 0, result.output
    assert keys.load_key(Path(settings_env["BALLOT_KEYS_DIR"]), "body-1", "city-own").name == "body-1"


def test_doctor_fix_tightens_a_passphrase_file(settings_env):
    folder = Path(settings_env["BALLOT_INSTANCE_PATH"]) / keys.PASSPHRASE_DIR
    folder.mkdir(mode=0o755, parents=True)
    (folder / "body-1").write_text("city")
    os.chmod(folder / "body-1", 0o644)
    settings = Settings.from_env(settings_env)
    check = doctor.check_permissions(settings)
    assert not check.ok and "passphrases/body-1 is 0644" in check.en and "passphrases is 0755" in check.en
    assert doctor.check_permissions(settings, fix=True).ok and doctor.check_permissions(settings).ok
    assert keys.passphrase_for(settings, "body-1") == "city"
