"""The health checks of `ballot-service doctor`, which `serve` also runs at start: each returns
a Check with a verdict in plain words, Chinese and English (OK, or PROBLEM: what and how to fix).

A fatal check (database unreachable or of a newer version, a signing key that exists but does
not unlock) stops `serve`; the others are reported and the service starts.
"""
from __future__ import annotations

import datetime as dt
import os
import ssl
import stat
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from ballot_service.crypto import openssl_rsa
from ballot_service.crypto.keys import PASSPHRASE_DIR, PRIVATE_SUFFIX, body_key_name
from ballot_service.domain import body_keys
from ballot_service.errors import BallotError
from ballot_service.migrate import alembic_config
from ballot_service.ops.backup import is_sqlite, sqlite_path
from ballot_service.ops.tls import CA_CERT, tls_dir
from ballot_service.render.fonts import FontNotFound, find_font

CLOCK_TOLERANCE_S = 2.0
EARLIEST_PLAUSIBLE_YEAR = 2025  # a machine whose clock battery died shows 1970 or 2000
URL_TIMEOUT_S = 3.0


@dataclass
class Check:
    """One verdict. `en`/`zh`: what was found and, for a problem, how to fix it."""

    name: str
    ok: bool
    en: str
    zh: str
    fatal: bool = False

    def lines(self) -> list[str]:
        head = "OK     " if self.ok else ("FATAL  " if self.fatal else "PROBLEM")
        return [f"{head} [{self.name}] {self.zh}", f"{' ' * len(head)} [{self.name}] {self.en}"]


def _engine(settings):
    return create_engine(settings.database_url, pool_pre_ping=False)


def _sqlite_missing(settings) -> bool:
    return is_sqlite(settings.database_url) and not sqlite_path(settings.database_url).exists()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def check_font() -> Check:
    try:
        path = find_font()
    except FontNotFound as exc:
        return Check("font", False, exc.message, exc.zh or exc.message)
    return Check("font", True, f"Chinese font found: {path}", f"已找到中文字体：{path}")


def check_blind_signing() -> Check:
    """Which code makes the blind signatures (crypto/openssl_rsa.py): OpenSSL, or gmpy2's slower CRT."""
    if openssl_rsa.available():
        return Check("blind_signing", True, f"blind signatures by {ssl.OPENSSL_VERSION}",
                     f"盲签名由 {ssl.OPENSSL_VERSION} 完成")
    return Check("blind_signing", False,
                 f"blind signatures fall back to gmpy2 (about 3 times the CPU: ~3 s instead of ~1 s for a hall "
                 f"of 3,000) because Python's ssl module is not on OpenSSL 3 ({ssl.OPENSSL_VERSION}); run the "
                 "service on a Python built with OpenSSL 3",
                 f"盲签名改用 gmpy2 计算（CPU 用量约为三倍：3000 人约 3 秒而非约 1 秒），因为 Python 的 ssl 模块不是"
                 f" OpenSSL 3（{ssl.OPENSSL_VERSION}）；请使用基于 OpenSSL 3 构建的 Python 运行本服务")


def check_database(settings, *, at_start: bool = False) -> Check:
    """Reachable, and at this code's head migration. At start (`serve` upgrades the schema right
    after) only reachability and a revision this code knows count."""
    if _sqlite_missing(settings):
        path = sqlite_path(settings.database_url)
        if at_start:
            return Check("database", True, f"{path} will be created", f"将新建数据库 {path}")
        return Check("database", False, f"no database yet at {path}: run `ballot-service init-db` (or serve)",
                     f"尚无数据库 {path}：请运行 `ballot-service init-db`（或直接启动服务）")
    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            tables = set(inspect(conn).get_table_names())
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
                if "alembic_version" in tables else None
    except Exception as exc:  # noqa: BLE001 - any driver error means "not reachable"
        reason = str(exc).splitlines()[0][:300]
        return Check("database", False,
                     f"cannot reach the database ({reason}): check BALLOT_DATABASE_URL, that the server runs "
                     f"and that this user may open it",
                     f"无法连接数据库（{reason}）：请检查 BALLOT_DATABASE_URL、数据库服务是否运行、本用户是否有权访问",
                     fatal=True)
    finally:
        engine.dispose()
    head = head_revision()
    known = {s.revision for s in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()}
    if current is not None and current not in known:
        return Check("database", False,
                     f"the database is at revision {current}, unknown to this version (a newer ballot-service "
                     f"wrote it): run that version, or restore a backup made by this one",
                     f"数据库结构版本 {current} 不为本版本程序所知（由更新版本写入）：请运行该版本，或恢复本版本的备份",
                     fatal=True)
    if current != head:
        if at_start:
            return Check("database", True, f"reachable; schema {current or '(empty)'} will be upgraded to {head}",
                         f"数据库可连接；结构将从 {current or '（空）'} 升级到 {head}")
        return Check("database", False,
                     f"reachable, but at revision {current or '(no schema)'} and this version needs {head}: "
                     f"run `ballot-service init-db` (serve also upgrades)",
                     f"数据库可连接，但结构版本为 {current or '（无）'}，本版本需要 {head}：请运行 "
                     f"`ballot-service init-db`（启动服务时也会升级）")
    return Check("database", True, f"reachable, schema at the head revision {head}",
                 f"数据库可连接，结构为最新版本 {head}")


def _bodies(settings) -> list[tuple[int, str]] | None:
    """(id, name) of every body, or None when the database cannot be read."""
    if _sqlite_missing(settings):
        return []
    engine = _engine(settings)
    try:
        return body_keys.bodies(engine)
    except Exception:  # noqa: BLE001 - reported by check_database
        return None
    finally:
        engine.dispose()


def check_keys(settings) -> list[Check]:
    """Each body's signing key exists and unlocks with its passphrase (crypto/keys.passphrase_for).
    A key that is there but does not unlock is fatal (nothing could be signed); a body without
    a key yet is a problem the console can fix (its body page), so the service may start."""
    bodies = _bodies(settings)
    if bodies is None:
        return [Check("keys", False, "not checked: the database cannot be read", "未检查：无法读取数据库")]
    if not bodies:
        return [Check("keys", True, "no body yet, so no signing key to check", "尚无机构，无需检查签名密钥")]
    out = []
    for body_id, name, key in body_keys.body_key_states(settings, bodies):
        label = f"{name} (body {body_id}, {body_key_name(body_id)})"
        if key is None:
            out.append(Check("keys", False,
                             f"{label}: no signing key in {settings.keys_dir}: create it with "
                             f"`ballot-service keys create {body_id}` (or restore it from the key backup)",
                             f"{name}（机构 {body_id}）：{settings.keys_dir} 中没有签名密钥：请运行 "
                             f"`ballot-service keys create {body_id}` 生成（或从密钥备份恢复）"))
        elif isinstance(key, BallotError):
            out.append(Check("keys", False, f"{label}: {key.message}", f"{name}（机构 {body_id}）：{key.zh or key.message}",
                             fatal=True))
        else:
            out.append(Check("keys", True, f"{label}: key unlocks, fingerprint {key.fingerprint}",
                             f"{name}（机构 {body_id}）：签名密钥可用，指纹 {key.fingerprint}"))
    return out


def _private_files(settings) -> list[tuple[Path, int]]:
    """(path, the widest mode it should have) for the instance's private folders and files."""
    want: list[tuple[Path, int]] = [(Path(settings.instance_path), 0o700)]
    inst = Path(settings.instance_path)
    for name in ("secret_key",):
        want.append((inst / name, 0o600))
    tls = tls_dir(settings.instance_path)
    if tls.is_dir():
        want.append((tls, 0o700))
        want += [(p, 0o600) for p in sorted(tls.glob("*.key"))]
    if is_sqlite(settings.database_url):
        db = sqlite_path(settings.database_url)
        want.append((db.parent, 0o700))
        want += [(db.with_name(db.name + s), 0o600) for s in ("", "-wal", "-shm", ".writer-lock")]
    passphrases = inst / PASSPHRASE_DIR
    if passphrases.is_dir():
        want.append((passphrases, 0o700))
        want += [(p, 0o600) for p in sorted(passphrases.iterdir())]
    keys = Path(settings.keys_dir)
    want.append((keys, 0o700))
    if keys.is_dir():
        want += [(p, 0o600) for p in sorted(keys.glob(f"*{PRIVATE_SUFFIX}"))]
    seen, out = set(), []
    for path, mode in want:
        if path.exists() and path.resolve() not in seen:
            seen.add(path.resolve())
            out.append((path, mode))
    return out


def check_permissions(settings, *, fix: bool = False) -> Check:
    """The instance folder, the database file and private keys are for this user alone
    (folders 0700, files 0600). With fix=True, tighten them."""
    loose, fixed = [], []
    for path, widest in _private_files(settings):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & ~widest:
            if fix:
                os.chmod(path, mode & widest)
                fixed.append(f"{path} {mode:04o}→{mode & widest:04o}")
            else:
                loose.append(f"{path} is {mode:04o}, expected {widest:04o}")
    if loose:
        return Check("permissions", False,
                     "others may read private files: " + "; ".join(loose) + ". Fix: `ballot-service doctor --fix` "
                     "(or chmod them), and run the service as its own user",
                     "其他用户可读取私密文件：" + "；".join(loose) + "。处理：运行 `ballot-service doctor --fix`"
                     "（或手动 chmod），并以专用用户运行服务")
    if fixed:
        return Check("permissions", True, "tightened: " + "; ".join(fixed), "已收紧权限：" + "；".join(fixed))
    return Check("permissions", True, "instance folder, database and private keys are readable by this user only",
                 "实例文件夹、数据库和私钥仅本用户可读")


def check_public_url(settings, *, timeout: float = URL_TIMEOUT_S) -> Check:
    """BALLOT_PUBLIC_URL is set and answers an HTTP GET from this machine (any answer below 500;
    an https address is checked against the hall's CA when `tls init` made one)."""
    url = settings.public_url
    if not url:
        return Check("public_url", False,
                     "BALLOT_PUBLIC_URL is not set: QR codes and tablet set-up links then use whatever address "
                     "a browser used, which may not work for tablets. Set it, e.g. BALLOT_PUBLIC_URL=http://10.0.0.5:8000",
                     "未设置 BALLOT_PUBLIC_URL：二维码和平板设置链接将使用浏览器访问时的地址，平板可能无法访问。"
                     "请设置，例如 BALLOT_PUBLIC_URL=http://10.0.0.5:8000")
    context = None
    if url.startswith("https://"):
        ca = tls_dir(settings.instance_path) / CA_CERT
        context = ssl.create_default_context(cafile=str(ca) if ca.is_file() else None)
    try:
        with urllib.request.urlopen(url + "/", timeout=timeout, context=context) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check("public_url", False,
                     f"{url} does not answer from this machine ({reason}): start the service, check the address, "
                     f"port and firewall (serve --host 0.0.0.0 to listen beyond this machine)",
                     f"本机无法访问 {url}（{reason}）：请启动服务，检查地址、端口和防火墙"
                     f"（serve --host 0.0.0.0 才能被其他设备访问）")
    if status >= 500:
        return Check("public_url", False, f"{url} answers with HTTP {status}: see the service's log",
                     f"{url} 返回 HTTP {status}：请查看服务日志")
    return Check("public_url", True, f"{url} answers (HTTP {status})", f"{url} 可访问（HTTP {status}）")


def _database_now(settings) -> dt.datetime:
    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            if is_sqlite(settings.database_url):
                raw = conn.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
                return dt.datetime.fromisoformat(raw).replace(tzinfo=dt.timezone.utc)
            return conn.execute(text("SELECT clock_timestamp()")).scalar_one().astimezone(dt.timezone.utc)
    finally:
        engine.dispose()


def check_clock(settings, *, system_now=None, database_now=None) -> Check:
    """System time and the database's clock agree within CLOCK_TOLERANCE_S, and the year is
    plausible (records and the audit log carry these times). The two `*_now` callables are
    for tests."""
    system_now = system_now or (lambda: dt.datetime.now(dt.timezone.utc))
    database_now = database_now or (lambda: _database_now(settings))
    if _sqlite_missing(settings):
        db_time = None
    else:
        try:
            before = system_now()
            db_time = database_now()
            after = system_now()
        except Exception:  # noqa: BLE001 - reported by check_database
            return Check("clock", False, "not checked: the database cannot be read", "未检查：无法读取数据库")
    now = system_now()
    if now.year < EARLIEST_PLAUSIBLE_YEAR:
        return Check("clock", False,
                     f"the system clock says {now:%Y-%m-%d %H:%M} UTC: set the time (timedatectl, or date -s) "
                     f"before a sitting; records and the audit log carry it",
                     f"系统时间为 {now:%Y-%m-%d %H:%M}（UTC），明显错误：会前请校准时间（timedatectl 或 date -s），"
                     f"表决记录和审计日志都记载时间")
    if db_time is None:
        return Check("clock", True, f"system time {now:%Y-%m-%d %H:%M:%S} UTC (no database yet to compare)",
                     f"系统时间 {now:%Y-%m-%d %H:%M:%S}（UTC）（尚无数据库可比对）")
    middle = before + (after - before) / 2
    skew = (db_time - middle).total_seconds()
    if abs(skew) > CLOCK_TOLERANCE_S:
        return Check("clock", False,
                     f"the database's clock is {skew:+.1f} s from this machine's: synchronise both machines' "
                     f"clocks (chrony/NTP on the hall network, or set them by hand)",
                     f"数据库服务器时间与本机相差 {skew:+.1f} 秒：请校准两台机器的时间（会场网络内的 chrony/NTP，或手动设置）")
    return Check("clock", True, f"system and database clocks agree ({skew:+.2f} s)",
                 f"系统时间与数据库时间一致（相差 {skew:+.2f} 秒）")


def check_secret_key(settings, env=None) -> Check:
    """Sessions and CSRF tokens are signed with BALLOT_SECRET_KEY. Unset, `serve` keeps one in
    its instance folder: right for one server, but app nodes sharing a PostgreSQL database each
    keep their own, so a login made on one node is refused by another (README, "Production
    layout")."""
    env = os.environ if env is None else env
    if env.get("BALLOT_SECRET_KEY"):
        return Check("secret_key", True, "BALLOT_SECRET_KEY is set (every app node must have the same one)",
                     "已设置 BALLOT_SECRET_KEY（各应用节点须相同）")
    if is_sqlite(settings.database_url):
        return Check("secret_key", True, "session secret kept in the instance folder (one server on SQLite)",
                     "会话密钥保存在实例目录中（SQLite 单台服务器）")
    return Check("secret_key", False,
                 "BALLOT_SECRET_KEY is not set: each app node keeps its own in its instance folder, so a login "
                 "made on one node is refused by another; set the same BALLOT_SECRET_KEY on every node",
                 "未设置 BALLOT_SECRET_KEY：每个应用节点各自在实例目录中生成密钥，在一个节点上的登录会被另一节点拒绝；"
                 "请在所有节点上设置相同的 BALLOT_SECRET_KEY")


def run_checks(settings, *, fix: bool = False, at_start: bool = False) -> list[Check]:
    """Every check in order. At start the public URL cannot answer yet (the server is not
    listening), so it is only required to be set there."""
    checks = [check_database(settings, at_start=at_start), *check_keys(settings), check_font(),
              check_blind_signing(), check_permissions(settings, fix=fix)]
    if at_start:
        if not settings.public_url:
            checks.append(check_public_url(settings))
    else:
        checks.append(check_public_url(settings))
    checks.append(check_clock(settings))
    if not at_start:  # serve checks the secret itself, before it fills a missing one in (serve_cmd)
        checks.append(check_secret_key(settings))
    return checks
