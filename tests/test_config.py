"""Settings from the environment: defaults, and a bad value stops the start with a message
that names the variable."""
from __future__ import annotations

import pytest

from ballot_service.config import ConfigError, Settings


def test_defaults():
    s = Settings.from_env({})
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("instance/ballot.sqlite3")
    assert (s.language, s.max_body_bytes, s.session_hours, s.session_idle_minutes) == ("zh", 65536, 12, 60)
    assert s.public_url is None and s.key_passphrase is None


@pytest.mark.parametrize("name, value", [
    ("BALLOT_DATABASE_URL", "mysql://root@localhost/ballots"),
    ("BALLOT_LANGUAGE", "fr"),
    ("BALLOT_SESSION_HOURS", "zero"),
    ("BALLOT_SESSION_IDLE_MINUTES", "0"),
    ("BALLOT_MAX_BODY_BYTES", "12"),
    ("BALLOT_PUBLIC_URL", "vote.example.gov.cn"),
    ("BALLOT_PUBLIC_URL", "ftp://vote.example.gov.cn"),
    ("BALLOT_PUBLIC_URL", "https://vote.example.gov.cn/?x=1"),
    ("BALLOT_TRUSTED_PROXIES", "10.0.0.2, proxy.local"),
    ("BALLOT_TRUSTED_PROXIES", "10.0.0.0/33"),
])
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({name: value})
    assert name in str(err.value)


def test_public_url_loses_its_trailing_slash():
    assert Settings.from_env({"BALLOT_PUBLIC_URL": " https://vote.example.gov.cn/ "}).public_url == \
        "https://vote.example.gov.cn"
    assert Settings.from_env({"BALLOT_PUBLIC_URL": "http://10.0.0.5:8000"}).public_url == "http://10.0.0.5:8000"


def test_trusted_proxies_and_key_passphrases_per_key():
    s = Settings.from_env({"BALLOT_TRUSTED_PROXIES": "10.0.0.2, 10.0.1.0/24 ::1",
                           "BALLOT_KEY_PASSPHRASE_BODY_2": "township", "BALLOT_KEY_PASSPHRASE_BODY_3": ""})
    assert s.trusted_proxies == ("10.0.0.2/32", "10.0.1.0/24", "::1/128")
    assert s.key_passphrases == (("BODY_2", "township"),)  # an empty one is not a passphrase
