"""Settings from the environment, with safe defaults; a bad value fails at start."""
from __future__ import annotations

import os
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KEY_PASSPHRASE_VAR = "BALLOT_KEY_PASSPHRASE"  # the default; _<KEY NAME> after it names one key's


def _default_templates() -> Path:
    """A built wheel carries the templates inside the package (setup.py); a checkout has them
    in the top-level templates/ folder."""
    packaged = Path(__file__).resolve().parent / "templates"
    return packaged if packaged.is_dir() else PROJECT_ROOT / "templates"


def private_dir(path: Path) -> None:
    """Make `path` a folder only its owner can enter (0700): the instance folder, the SQLite
    database's folder. An existing folder is tightened only when it is ours."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid == os.getuid():
        path.chmod(0o700)


def private_file(path: Path) -> None:
    """Create `path` empty if missing, readable by its owner only (0600); tighten it if it is
    ours. SQLite gives the -wal and -shm files the database file's mode."""
    path = Path(path)
    # Never open an existing database file here: closing any descriptor of a file drops every
    # POSIX lock this process holds on it, SQLite's included (a live server's casts would then
    # write without their locks). A new file is created exclusively, before SQLite opens it.
    if not path.exists():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
        except FileExistsError:
            pass
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists() and p.stat().st_uid == os.getuid():
            p.chmod(0o600)


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _int(env: dict, name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def _networks(env: dict, name: str) -> tuple[str, ...]:
    """Addresses or networks (10.0.0.2, 10.0.1.0/24, ::1), separated by commas or spaces."""
    out = []
    for part in (env.get(name) or "").replace(",", " ").split():
        try:
            out.append(str(ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(f"{name}: {part!r} is not an IP address or network like 10.0.0.2 or "
                              f"10.0.1.0/24") from None
    return tuple(out)


@dataclass(frozen=True)
class Settings:
    database_url: str
    instance_path: Path
    keys_dir: Path
    ballots_dir: Path
    templates_dir: Path
    key_passphrase: str | None
    secret_key: str
    max_body_bytes: int = 64 * 1024
    language: str = "zh"
    session_hours: int = 12
    session_idle_minutes: int = 60
    public_url: str | None = None  # how seat tablets and phones reach the service (QR codes, set-up links)
    # (key name, passphrase) from BALLOT_KEY_PASSPHRASE_<KEY NAME> (crypto/keys.passphrase_for)
    key_passphrases: tuple[tuple[str, str], ...] = ()
    trusted_proxies: tuple[str, ...] = ()  # addresses/networks whose X-Forwarded-For is read (web/proxies.py)

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        instance = Path(env.get("BALLOT_INSTANCE_PATH") or PROJECT_ROOT / "instance")
        url = env.get("BALLOT_DATABASE_URL") or f"sqlite:///{instance / 'ballot.sqlite3'}"
        if not (url.startswith("sqlite") or url.startswith("postgresql")):
            raise ConfigError(
                f"BALLOT_DATABASE_URL={url!r}: only sqlite:/// and postgresql+psycopg:// URLs are supported"
            )
        language = env.get("BALLOT_LANGUAGE", "zh")
        if language not in ("zh", "en"):
            raise ConfigError(f"BALLOT_LANGUAGE={language!r} must be 'zh' or 'en'")
        public_url = (env.get("BALLOT_PUBLIC_URL") or "").strip().rstrip("/") or None
        if public_url is not None:
            parts = urlsplit(public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
                raise ConfigError(f"BALLOT_PUBLIC_URL={public_url!r} must be an http:// or https:// address "
                                  f"like https://vote.example.gov.cn or http://10.0.0.5:8000 (no query)")
        return cls(
            database_url=url,
            instance_path=instance,
            keys_dir=Path(env.get("BALLOT_KEYS_DIR") or PROJECT_ROOT / "keys"),
            ballots_dir=Path(env.get("BALLOT_BALLOTS_DIR") or PROJECT_ROOT / "ballots"),
            templates_dir=Path(env.get("BALLOT_TEMPLATES_DIR") or _default_templates()),
            key_passphrase=env.get("BALLOT_KEY_PASSPHRASE"),
            secret_key=env.get("BALLOT_SECRET_KEY") or os.urandom(32).hex(),
            max_body_bytes=_int(env, "BALLOT_MAX_BODY_BYTES", 64 * 1024, minimum=1024),
            language=language,
            session_hours=_int(env, "BALLOT_SESSION_HOURS", 12, minimum=1),
            session_idle_minutes=_int(env, "BALLOT_SESSION_IDLE_MINUTES", 60, minimum=1),
            public_url=public_url,
            key_passphrases=tuple(sorted((k[len(KEY_PASSPHRASE_VAR) + 1:], v) for k, v in env.items()
                                         if k.startswith(KEY_PASSPHRASE_VAR + "_") and v)),
            trusted_proxies=_networks(env, "BALLOT_TRUSTED_PROXIES"),
        )
