"""Operating an instance: `backup`, `restore`, `doctor`, `tls init`; and the checks and HTTPS
files `serve` uses at start (start_checks, tls_files)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ballot_service.config import ConfigError, Settings
from ballot_service.errors import BallotError
from ballot_service.ops import doctor as doctor_checks
from ballot_service.ops.backup import create_backup, restore_backup
from ballot_service.ops.tls import init_tls, server_files


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _fail(exc: BallotError) -> None:
    click.echo(f"错误 error: {exc.zh or exc.message}", err=True)
    if exc.zh:
        click.echo(f"           {exc.message}", err=True)
    sys.exit(2)


@click.command("backup", help="Back up the database (SQLite: an online copy, safe while serving; PostgreSQL: "
                              "pg_dump) and the bodies' public keys into DEST (a new folder), with a "
                              "manifest of sha256 hashes. Private keys are NOT included (README: Backups).")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
def backup(dest: Path) -> None:
    try:
        m = create_backup(_settings(), dest)
    except BallotError as exc:
        _fail(exc)
    db = m["database"]
    counts = ", ".join(f"{k} {v}" for k, v in db["counts"].items())
    click.echo(f"备份完成 backup written to {dest}: {db['kind']} database {db['file']}, schema "
               f"{db['schema_revision']}, {len(m['files'])} files ({counts})")
    click.echo("私钥未包含 private keys are not in it: back them up separately (README: Backups)")


@click.command("restore", help="Restore the backup in SRC onto this instance (BALLOT_DATABASE_URL, "
                               "BALLOT_KEYS_DIR): checks the manifest's hashes; refuses a database that "
                               "already holds data unless --force. Stop the service first.")
@click.argument("src", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--force", is_flag=True, help="replace a database that already holds data")
def restore(src: Path, force: bool) -> None:
    settings = _settings()
    try:
        m = restore_backup(settings, src, force=force)
    except BallotError as exc:
        _fail(exc)
    db = m["database"]
    click.echo(f"恢复完成 restored {src} (made {m['created_at']}, schema {db['schema_revision']}) onto "
               f"{db['kind']} database; public keys copied to {settings.keys_dir}")
    click.echo("next 下一步: copy the private keys (body-N.key.pem) from the key backup into "
               f"{settings.keys_dir} (mode 0600), then run `ballot-service doctor`")


@click.command("doctor", help="Check this instance: Chinese font, each body's signing key, database and "
                              "schema, file permissions, BALLOT_PUBLIC_URL, clock. Exit 1 on any problem.")
@click.option("--fix", is_flag=True, help="tighten the instance folder's, database's and keys' permissions")
def doctor(fix: bool) -> None:
    checks = doctor_checks.run_checks(_settings(), fix=fix)
    for check in checks:
        for line in check.lines():
            click.echo(line)
    problems = [c for c in checks if not c.ok]
    click.echo(f"{len(problems)} 个问题 problem(s)" if problems else "全部正常 all OK")
    sys.exit(1 if problems else 0)


@click.group("tls", help="HTTPS for the hall's network: a local CA and the server's certificate.")
def tls() -> None:
    pass


@tls.command("init", help="Make a local CA (once; 10 years) and a server certificate for every --host "
                          "(IP address or DNS name tablets use), in the instance folder's tls/. Run again "
                          "to re-issue the server certificate from the same CA.")
@click.option("--host", "hosts", multiple=True, required=True, help="an IP address or DNS name; repeat")
def tls_init(hosts: tuple[str, ...]) -> None:
    settings = _settings()
    try:
        info = init_tls(settings.instance_path, list(hosts))
    except BallotError as exc:
        _fail(exc)
    click.echo(("新建根证书 new CA" if info["created_ca"] else "沿用根证书 same CA") + f": {info['ca_cert']}")
    click.echo(f"  SHA-256 {info['ca_sha256']}")
    click.echo(f"服务器证书 server certificate for {', '.join(info['names'])}: {info['server_cert']} "
               f"(valid until {info['server_not_after']:%Y-%m-%d})")
    click.echo("Install ca.crt on each tablet as a trusted root (compare the SHA-256 above), set "
               "BALLOT_PUBLIC_URL=https://…, and `serve` uses HTTPS (README: HTTPS in the hall).")


def tls_option(f):
    return click.option("--tls/--no-tls", "tls_mode", default=None,
                        help="serve HTTPS with the certificate from `tls init` (default: when its files exist)")(f)


def checks_option(f):
    return click.option("--skip-checks", is_flag=True,
                        help="start without the start-up checks of `doctor` (database, keys, …)")(f)


def tls_files(settings, tls_mode: bool | None) -> tuple[Path, Path] | None:
    """The (certificate, key) to serve HTTPS with, or None for plain HTTP."""
    files = server_files(settings.instance_path)
    if tls_mode and files is None:
        raise click.ClickException(f"--tls: no certificate in {settings.instance_path}/tls: run "
                                   f"`ballot-service tls init --host ADDRESS` first")
    return files if tls_mode is not False else None


def start_checks(settings, skip: bool, *, before_upgrade: bool) -> None:
    """serve: before the schema upgrade, the database must answer; after it, every check runs,
    problems are printed, and a fatal one (database, a key that does not unlock) stops the start."""
    if skip:
        return
    checks = [doctor_checks.check_database(settings, at_start=True)] if before_upgrade else \
        doctor_checks.run_checks(settings, at_start=True)
    for check in checks:
        if not check.ok:
            for line in check.lines():
                click.echo(line, err=True)
    fatal = [c for c in checks if c.fatal and not c.ok]
    if fatal:
        raise click.ClickException("not starting: fix the FATAL problem(s) above (`ballot-service doctor` "
                                   "checks again; --skip-checks starts anyway) · 服务未启动：请先处理上述严重问题")


commands = [backup, restore, doctor, tls]
