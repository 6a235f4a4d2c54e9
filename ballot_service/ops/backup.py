"""Backups of an instance and restoring one onto a fresh instance.

A backup is a folder:

- `database.sqlite3`: SQLite's online backup (sqlite3's backup API, all pages in one step, so
  one read snapshot of the live file with its WAL: consistent while the server keeps writing),
  or `database.pgdump`: `pg_dump --format=custom` of the configured PostgreSQL database;
- `keys/*.pub.pem`: the bodies' PUBLIC keys. Private keys are left out on purpose (README:
  "Backups"): a backup travels to places a private key must not, and a key without its
  passphrase is of no use to a restore while a leaked key signs records;
- `manifest.json`: format, time, schema revision, row counts, and sha256 + size of every file.

`restore` checks the manifest (every file's hash, a revision this code knows), refuses a target
database that already holds data unless forced, puts the database in place, upgrades its schema
to this code's head and copies the public keys back.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, make_url, select, text
from sqlalchemy.engine import Connection

from ballot_service.bundle.encoding import sha256_file
from ballot_service.crypto.keys import PUBLIC_SUFFIX
from ballot_service.db import Base
from ballot_service.errors import BallotError
from ballot_service.migrate import alembic_config, upgrade

FORMAT = "ballot-service-backup"
VERSION = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.pgdump"
COUNTED = ("bodies", "sittings", "items", "rounds", "casts", "staged_casts", "records", "audit_events")


class BackupError(BallotError):
    """A backup or restore cannot go on; the message says why and what to do."""

    status = 500
    error_type = "BackupError"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url} is not a SQLite file", zh=f"{url} 不是 SQLite 数据库文件")
    return Path(database)


def libpq_url(url: str) -> tuple[str, dict]:
    """The SQLAlchemy URL as libpq understands it (no +driver), with the password moved to
    PGPASSWORD so it does not show in the process list."""
    u = make_url(url)
    env = {}
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    return u.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _pg_tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise BackupError(
            f"{name} is not installed: install PostgreSQL's client tools (`apt-get install postgresql-client`, "
            f"the same major version as the server or newer) and run this again",
            where=name, zh=f"未安装 {name}：请先安装 PostgreSQL 客户端工具（apt-get install postgresql-client，"
                           f"主版本不低于服务器），然后重试")
    return exe


def revision_and_counts(conn: Connection) -> tuple[str | None, dict]:
    """The Alembic revision stamped in the database and a few row counts (None/{} when empty)."""
    tables = set(inspect(conn).get_table_names())
    rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
        if "alembic_version" in tables else None
    counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED if t in tables}
    return rev, counts


def has_data(url: str) -> bool:
    """True when any table of the schema holds a row (an empty or missing schema is no data)."""
    if is_sqlite(url) and not sqlite_path(url).exists():
        return False
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            for table in Base.metadata.sorted_tables:
                if table.name in present and conn.execute(select(table).limit(1)).first() is not None:
                    return True
        return False
    finally:
        engine.dispose()


def _sqlite_online_copy(src: Path, dst: Path) -> None:
    """sqlite3's backup API on the live file: all pages in one step inside one read
    transaction, so the copy is one consistent snapshot (WAL frames included) while other
    connections keep committing. The copy becomes a single self-contained file."""
    if not src.is_file():
        raise BackupError(f"database file {src} not found", where=str(src), zh=f"找不到数据库文件 {src}")
    source = sqlite3.connect(str(src), timeout=30)
    target = sqlite3.connect(str(dst))
    try:
        source.execute("PRAGMA busy_timeout=30000")
        source.backup(target, pages=-1)
        target.execute("PRAGMA journal_mode=DELETE")
        result = target.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise BackupError(f"the copy of {src} fails SQLite's integrity check: {result}", where=str(src),
                              zh=f"数据库 {src} 的副本未通过 SQLite 完整性检查：{result}")
    finally:
        target.close()
        source.close()
    os.chmod(dst, 0o600)


def _pg_dump(url: str, dst: Path) -> tuple[str | None, dict]:
    """pg_dump in the snapshot of an open REPEATABLE READ transaction, which also counts the
    rows: the manifest's counts are exactly those of the dump. Returns (revision, counts)."""
    exe = _pg_tool("pg_dump")
    conninfo, env = libpq_url(url)
    engine = create_engine(url, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn:
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            revision, counts = revision_and_counts(conn)
            _run_pg_dump(exe, conninfo, env, dst, snapshot)
            conn.rollback()
    finally:
        engine.dispose()
    return revision, counts


def _run_pg_dump(exe: str, conninfo: str, env: dict, dst: Path, snapshot: str) -> None:
    proc = subprocess.run([exe, "--format=custom", "--no-owner", f"--snapshot={snapshot}", "--file", str(dst),
                           "--dbname", conninfo],
                          env={**os.environ, **env}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackupError(f"pg_dump failed: {proc.stderr.strip()}", where="pg_dump",
                          zh=f"pg_dump 执行失败：{proc.stderr.strip()}")
    os.chmod(dst, 0o600)


def create_backup(settings, dest: Path, *, now: dt.datetime | None = None) -> dict:
    """Write a backup of the configured database and the public keys into `dest` (a new or
    empty folder). Returns the manifest."""
    dest = Path(dest)
    if not is_sqlite(settings.database_url):
        _pg_tool("pg_dump")  # say so before anything else when it is not installed
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: give a new folder for the backup", where=str(dest),
                          zh=f"{dest} 不是空文件夹：请为备份指定一个新文件夹")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(dest, 0o700)
    url = settings.database_url
    if is_sqlite(url):
        db_file, kind = dest / SQLITE_FILE, "sqlite"
        _sqlite_online_copy(sqlite_path(url), db_file)
        engine = create_engine(f"sqlite:///{db_file}")
        try:
            with engine.connect() as conn:
                revision, counts = revision_and_counts(conn)
        finally:
            engine.dispose()
    else:
        db_file, kind = dest / PG_FILE, "postgresql"
        revision, counts = _pg_dump(url, db_file)
    keys_out = dest / "keys"
    keys_out.mkdir(mode=0o700)
    keys_dir = Path(settings.keys_dir)
    if keys_dir.is_dir():
        for pub in sorted(keys_dir.glob(f"*{PUBLIC_SUFFIX}")):
            shutil.copyfile(pub, keys_out / pub.name)
    files = {}
    for path in sorted(p for p in dest.rglob("*") if p.is_file()):
        rel = path.relative_to(dest).as_posix()
        files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {
        "format": FORMAT, "version": VERSION,
        "created_at": (now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds"),
        "database": {"kind": kind, "file": db_file.name, "schema_revision": revision, "counts": counts},
        "private_keys_included": False,
        "files": files,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def read_manifest(src: Path) -> dict:
    """Load the manifest and check it: format, every listed file present with its sha256, no
    file outside the list, and a schema revision this code knows."""
    src = Path(src)
    try:
        manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{src / MANIFEST} not found: {src} is not a ballot-service backup", where=str(src),
                          zh=f"找不到 {src / MANIFEST}：{src} 不是本系统的备份") from None
    except ValueError as exc:
        raise BackupError(f"{src / MANIFEST} is not valid JSON ({exc})", where=MANIFEST,
                          zh=f"{src / MANIFEST} 不是有效的 JSON") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BackupError(f"{src} is not a version-{VERSION} ballot-service backup", where=MANIFEST,
                          zh=f"{src} 不是本系统第 {VERSION} 版格式的备份")
    listed = manifest.get("files") or {}
    for rel, meta in listed.items():
        path = src / rel
        if ".." in Path(rel).parts or not path.is_file():
            raise BackupError(f"{rel} is listed in the manifest but missing from the backup", where=rel,
                              zh=f"清单中列出的 {rel} 在备份中缺失")
        if sha256_file(path) != meta.get("sha256"):
            raise BackupError(f"{rel} does not match its sha256 in the manifest: the backup is damaged or "
                              f"was changed; use another copy", where=rel,
                              zh=f"{rel} 与清单中的 sha256 不符：备份已损坏或被改动，请改用另一份备份")
    extra = [p.relative_to(src).as_posix() for p in src.rglob("*")
             if p.is_file() and p.name != MANIFEST and p.relative_to(src).as_posix() not in listed]
    if extra:
        raise BackupError(f"files not in the manifest: {', '.join(sorted(extra))}", where=MANIFEST,
                          zh=f"备份中有清单未列出的文件：{'、'.join(sorted(extra))}")
    db = manifest.get("database") or {}
    if db.get("file") not in listed:
        raise BackupError("the manifest names no database file", where=MANIFEST, zh="清单中没有数据库文件")
    revision = db.get("schema_revision")
    if revision is not None:
        known = {s.revision for s in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()}
        if revision not in known:
            raise BackupError(f"the backup's schema revision {revision} is unknown to this version of "
                              f"ballot-service (a newer version made it): install that version to restore it",
                              where="schema_revision",
                              zh=f"备份的数据库结构版本 {revision} 不为本版本程序所知（由更新的版本生成）："
                                 f"请安装该版本后再恢复")
    return manifest


def restore_backup(settings, src: Path, *, force: bool = False) -> dict:
    """Restore the backup in `src` onto the configured database and keys folder. Returns the
    manifest. The service must not be running on the target."""
    src = Path(src)
    manifest = read_manifest(src)
    db = manifest["database"]
    url = settings.database_url
    if (db["kind"] == "sqlite") != is_sqlite(url):
        raise BackupError(f"the backup holds a {db['kind']} database but BALLOT_DATABASE_URL is "
                          f"{make_url(url).get_backend_name()}: restore onto the same kind of database",
                          where="BALLOT_DATABASE_URL", zh="备份的数据库类型与 BALLOT_DATABASE_URL 不同：请恢复到同类数据库")
    if has_data(url) and not force:
        raise BackupError("the target database already holds data: restore onto a fresh instance, or add "
                          "--force to replace it (stop the service first)", where="BALLOT_DATABASE_URL",
                          zh="目标数据库中已有数据：请恢复到新实例；确需覆盖，请先停止服务，再加 --force")
    _check_keys(src, Path(settings.keys_dir), force)
    if db["kind"] == "sqlite":
        _restore_sqlite(src / db["file"], sqlite_path(url))
    else:
        _restore_pg(src / db["file"], url)
    upgrade(url)
    keys_dir = Path(settings.keys_dir)
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for pub in sorted((src / "keys").glob(f"*{PUBLIC_SUFFIX}")):
        target = keys_dir / pub.name
        if not target.exists() or target.read_bytes() != pub.read_bytes():
            shutil.copyfile(pub, target)
    return manifest


def _check_keys(src: Path, keys_dir: Path, force: bool) -> None:
    for pub in sorted((src / "keys").glob(f"*{PUBLIC_SUFFIX}")):
        target = keys_dir / pub.name
        if target.exists() and target.read_bytes() != pub.read_bytes() and not force:
            raise BackupError(f"{target} differs from the backup's {pub.name}: the keys folder belongs to "
                              f"another instance; use an empty BALLOT_KEYS_DIR or --force", where=str(target),
                              zh=f"{target} 与备份中的 {pub.name} 不同：密钥文件夹属于另一实例；"
                                 f"请使用空的 BALLOT_KEYS_DIR，或加 --force")


def _restore_sqlite(backup_file: Path, target: Path) -> None:
    """Copy the backup beside the target, check it, then move it into place in one rename
    (stale -wal/-shm files of the old database removed first, or SQLite would replay them)."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".restoring")
    shutil.copyfile(backup_file, tmp)
    os.chmod(tmp, 0o600)
    conn = sqlite3.connect(str(tmp))
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    if result != "ok":
        tmp.unlink()
        raise BackupError(f"the backup's database fails SQLite's integrity check: {result}",
                          zh=f"备份中的数据库未通过 SQLite 完整性检查：{result}")
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    for suffix in ("-wal", "-shm"):
        stale = target.with_name(target.name + suffix)
        if stale.exists():
            stale.unlink()
    os.replace(tmp, target)


def _restore_pg(dump: Path, url: str) -> None:
    exe = _pg_tool("pg_restore")
    conninfo, env = libpq_url(url)
    # --clean --if-exists: an empty schema made by init-db (or, with --force, the old data) goes first.
    args = [exe, "--no-owner", "--no-privileges", "--exit-on-error", "--clean", "--if-exists", "--dbname", conninfo]
    proc = subprocess.run(args + [str(dump)], env={**os.environ, **env}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackupError(f"pg_restore failed: {proc.stderr.strip()}", where="pg_restore",
                          zh=f"pg_restore 执行失败：{proc.stderr.strip()}")
