"""Running the service: `serve` (granian, or Flask's dev server with --dev) and `demo`
(sample bodies, roster and items, then serve)."""
from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

import click
from granian import Granian
from granian.constants import Interfaces, SSLProtocols
from sqlalchemy import func, make_url, select

from ballot_service import create_app
from ballot_service.cli.ops_cmd import checks_option, start_checks, tls_files, tls_option
from ballot_service.cli.setup import db_session
from ballot_service.config import PROJECT_ROOT, ConfigError, Settings
from ballot_service.crypto.keys import body_passphrase
from ballot_service.db import make_engine
from ballot_service.domain.operators import create_operator
from ballot_service.domain.roster import import_roster
from ballot_service.domain.sittings import (
    create_body,
    create_body_key,
    create_item,
    create_sitting,
    find_member,
    set_attendance,
)
from ballot_service.errors import BallotError
from ballot_service.formats.roster import read_roster
from ballot_service.migrate import upgrade
from ballot_service.models import Body, Operator
from ballot_service.ops.doctor import check_secret_key
from ballot_service.vocab import BodyKind, ItemKind, OperatorRole, Presence
from ballot_service.web.asgi import create_asgi_app

DEMO_CONGRESS = "示范市第十七届人民代表大会"
DEMO_SITTING = "第四次会议"
DEMO_COMMITTEE = "示范市第十七届人民代表大会常务委员会"
DEMO_COMMITTEE_SITTING = "第二十次会议"
DEMO_PROJECTS = [
    "城区老旧小区改造",
    "农村饮水安全巩固提升",
    "中小学校食堂提质改造",
    "社区嵌入式养老服务中心建设",
    "城乡公交一体化提升",
    "背街小巷环境整治",
    "新能源汽车公共充电桩建设",
    "普惠托育机构建设",
    "农贸市场升级改造",
    "城市口袋公园建设",
    "基层医疗卫生机构能力提升",
    "残疾人康复服务扩面提质",
]
DEMO_PLACES = 10
DEMO_NOMINEES = [
    ("n1", "任命刘振华为示范市人民政府副市长"),
    ("n2", "任命陈雅琴为示范市教育局局长"),
    ("n3", "任命吴立新为示范市中级人民法院审判员"),
]
DEMO_PRESENT = 55  # of the 60 on the sample roster; the next 3 are on leave, 2 absent
DEMO_LEAVE = 3
DEMO_COMMITTEE_PRESENT = 32  # of 35; 1 on leave, 2 absent
# Published in the README: for trying the demo only. A real service adds its own
# operators with `ballot-service operator add`.
DEMO_OPERATORS = [
    ("mishu", "mishu-demo-2026", OperatorRole.SECRETARIAT),
    ("daping", "daping-demo-2026", OperatorRole.DISPLAY),
    ("shenji", "shenji-demo-2026", OperatorRole.AUDITOR),
]


def _server_options(f):
    f = checks_option(tls_option(f))
    f = click.option("--dev", is_flag=True,
                     help="Use Flask's development server (auto-debug; never for a real sitting).")(f)
    f = click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
                     help="server worker processes (each runs --threads threads).")(f)
    f = click.option("--threads", type=click.IntRange(1, 256), default=16, show_default=True,
                     help="threads per worker for requests (the display's event streams hold none: web/asgi.py). More "
                          "threads than cores' worth of work only contend for the GIL: casts wait "
                          "longer (measured with benchmarks/bench_casts.py).")(f)
    f = click.option("--interface", type=click.Choice(["asgi", "wsgi"]), default="asgi", show_default=True,
                     help="asgi: event streams and tablets' long-polls on the event loop, holding no "
                          "thread (web/asgi.py); wsgi: plain Flask, every request on a thread (each "
                          "open screen holds one; tablets poll on their schedule).")(f)
    f = click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
                     envvar="PORT", help="TCP port (or set PORT).")(f)
    f = click.option("--host", default="127.0.0.1", show_default=True,
                     help="address to listen on; 0.0.0.0 for the seat terminals' network.")(f)
    return f


def _prepare(skip_checks: bool = False):
    """Validate settings, run the start-up checks (ops_cmd.start_checks), upgrade the schema,
    and fix one secret key for all workers."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not os.environ.get("BALLOT_SECRET_KEY"):
        # Every worker must sign sessions and CSRF tokens with the same key, and logins
        # should survive a restart: keep one in the instance folder (never in the repo).
        # Several app nodes need the same one set on each: say so.
        secret = check_secret_key(settings)
        if not secret.ok and not skip_checks:
            for line in secret.lines():
                click.echo(line, err=True)
        os.environ["BALLOT_SECRET_KEY"] = _instance_secret(settings.instance_path)
        settings = Settings.from_env()
    if settings.database_url.startswith("sqlite"):
        make_engine(settings.database_url).dispose()  # creates the SQLite file's folder
    start_checks(settings, skip_checks, before_upgrade=True)
    upgrade(settings.database_url)
    start_checks(settings, skip_checks, before_upgrade=False)
    return settings


def _instance_secret(instance: Path) -> str:
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if path.exists():
        value = path.read_text(encoding="ascii").strip()
        if value:
            return value
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(value + "\n")
    return value


def _run(settings, host: str, port: int, workers: int, threads: int, dev: bool, tls_mode=None,
         interface: str = "asgi") -> None:
    tls = tls_files(settings, tls_mode)
    click.echo(f"database: {_safe_url(settings.database_url)}", err=True)
    click.echo(f"serving on http{'s' if tls else ''}://{_url_host(host)}:{port}/", err=True)
    public = settings.public_url or lan_public_url(host, port, bool(tls), _lan_address())
    if public and not settings.public_url:
        # Listening on every interface with no public address set: QR codes and set-up links
        # would name whatever address the console was opened with (often 127.0.0.1), which a
        # tablet cannot reach. The workers inherit this.
        os.environ["BALLOT_PUBLIC_URL"] = public
    click.echo(f"public address (QR codes, tablet set-up links): {public or '(the address the browser used)'}; "
               f"set BALLOT_PUBLIC_URL to change it", err=True)
    if dev:
        # Werkzeug's dev server logs every request; it is for development only.
        create_app().run(host=host, port=port, debug=True, use_reloader=False, ssl_context=tls)
        return
    _granian(host, port, workers, threads, tls, interface)


CONNECTION_BACKLOG = 16384  # a hall's tablets, screens and consoles with room to spare


def _granian(host: str, port: int, workers: int, threads: int, tls=None, interface: str = "asgi") -> None:
    """Granian (an HTTP server in Rust): its HTTP handling costs a seventh of gunicorn
    gthread's CPU per request (0.03 vs 0.22 ms on a bare WSGI app, measured on this
    project's 2-core machine), which the cast intake at the start of a vote needs. It runs the
    ASGI app (web/asgi.py): screens' event streams on the event loop, the Flask app on
    `threads` threads per worker (--interface wsgi: the Flask app alone, as WSGI)."""
    os.environ[THREADS_ENV] = str(threads)
    asgi = interface == "asgi"
    Granian(
        # Built in each worker process (factory), so no worker shares a database
        # connection pool with another.
        "ballot_service.cli.serve_cmd:asgi_app" if asgi else "ballot_service:create_app", factory=True,
        interface=Interfaces.ASGI if asgi else Interfaces.WSGI,
        address=host, port=port, workers=workers, blocking_threads=1 if asgi else threads, websockets=False,
        # No access log, on purpose: lines of terminal address + time + path, set beside
        # the check-in list and the order casts arrive, could link a deputy to a ballot
        # and so break the secrecy of the vote. Errors still go to stderr.
        log_access=False, log_enabled=True,
        # Every seat tablet keeps a connection open: granian's default backlog (1,024) also
        # caps connections at 1,024 across the workers, so in a hall of 3,000 the other
        # tablets were never answered (benchmarks/bench_hall.py --preset hall).
        backlog=CONNECTION_BACKLOG,
        # Graceful stop: open display streams end within STREAM_SECONDS; don't wait for them.
        workers_kill_timeout=10,
        # HTTPS with the hall's own CA (ops/tls.py); TLS 1.2 too, for older tablets.
        **({"ssl_cert": tls[0], "ssl_key": tls[1], "ssl_protocol_min": SSLProtocols.tls12} if tls else {}),
    ).serve()


def lan_public_url(host: str, port: int, tls: bool, lan: str | None) -> str | None:
    """The address tablets reach when the server listens on every interface (0.0.0.0 / ::):
    this machine's LAN address; None when it listens on one address (then that is the one)."""
    if host not in ("0.0.0.0", "::", "") or not lan:
        return None
    return f"http{'s' if tls else ''}://{_url_host(lan)}:{port}"


def _lan_address() -> str | None:
    """This machine's address on its default route (a UDP socket's local end: nothing is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


THREADS_ENV = "BALLOT_SERVE_THREADS"


def asgi_app():
    """granian's factory, called in each worker: the Flask app wrapped for ASGI (web/asgi.py)
    on the number of threads `serve` was given."""
    return create_asgi_app(create_app(), threads=int(os.environ.get(THREADS_ENV, "16")))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@click.command("serve", help="Run the service under granian (upgrades the database schema first). "
                             "No access log is written, to protect ballot secrecy.")
@_server_options
def serve(host: str, port: int, interface: str, workers: int, threads: int, dev: bool, tls_mode,
          skip_checks: bool) -> None:
    _run(_prepare(skip_checks), host, port, workers, threads, dev, tls_mode, interface)


@click.command("demo", help=f"Load sample data ({DEMO_CONGRESS}{DEMO_SITTING}, 60 deputies, "
                            "a livelihood-projects vote, a resolution, a standing-committee "
                            "appointment vote) if the database has no body yet, then serve.")
@click.option("--load-only", is_flag=True, help="load the sample data and exit without serving")
@click.option("--sample-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None, help="folder with roster.csv and committee.csv (default: sample/)")
@_server_options
def demo(load_only: bool, sample_dir: Path | None, host: str, port: int, interface: str, workers: int,
         threads: int, dev: bool, tls_mode, skip_checks: bool) -> None:
    settings = _prepare(skip_checks)
    summary = load_demo(sample_dir or PROJECT_ROOT / "sample", settings)
    click.echo(summary)
    if not load_only:
        _run(settings, host, port, workers, threads, dev, tls_mode, interface)


def load_demo(sample_dir: Path, settings=None) -> str:
    """Load the sample bodies, rosters, attendance, items and demo logins in one
    transaction, unless the database already has a body; with a key passphrase set
    (settings.key_passphrase), each sample body also gets its signing key. Returns a
    short summary."""
    for name in ("roster.csv", "committee.csv"):
        if not (sample_dir / name).is_file():
            raise click.ClickException(f"sample file {sample_dir / name} is missing")

    with db_session() as db:
        if db.scalar(select(func.count()).select_from(Body)):
            return "sample data not loaded: the database already has bodies (ballot-service state shows them)"

        congress = create_body(db, DEMO_CONGRESS, BodyKind.CONGRESS)
        rows = read_roster(sample_dir / "roster.csv")
        import_roster(db, congress, rows, source="sample/roster.csv")
        sitting = create_sitting(db, congress, DEMO_SITTING)
        for i, row in enumerate(rows[: DEMO_PRESENT + DEMO_LEAVE]):
            status = Presence.PRESENT if i < DEMO_PRESENT else Presence.LEAVE
            set_attendance(db, sitting, find_member(db, congress.id, row.member_no), status, "manual")
        create_item(
            db, sitting, key="minsheng-2027", kind=ItemKind.LIVELIHOOD,
            title="2027年度民生实事项目票决", places=DEMO_PLACES,
            candidates=[{"key": f"p{i:02d}", "title": t} for i, t in enumerate(DEMO_PROJECTS, 1)])
        create_item(
            db, sitting, key="plan-resolution", kind=ItemKind.RESOLUTION,
            title="关于示范市2026年国民经济和社会发展计划执行情况与2027年计划的决议")

        committee = create_body(db, DEMO_COMMITTEE, BodyKind.STANDING_COMMITTEE)
        crows = read_roster(sample_dir / "committee.csv")
        import_roster(db, committee, crows, source="sample/committee.csv")
        csitting = create_sitting(db, committee, DEMO_COMMITTEE_SITTING)
        for i, row in enumerate(crows[: DEMO_COMMITTEE_PRESENT + 1]):
            status = Presence.PRESENT if i < DEMO_COMMITTEE_PRESENT else Presence.LEAVE
            set_attendance(db, csitting, find_member(db, committee.id, row.member_no), status, "manual")
        create_item(
            db, csitting, key="appointments", kind=ItemKind.APPOINTMENT, title="人事任免事项表决",
            candidates=[{"key": k, "title": t} for k, t in DEMO_NOMINEES])

        logins = []
        for username, password, role in DEMO_OPERATORS:
            if db.scalar(select(Operator).where(Operator.username == username)) is None:
                create_operator(db, username, password, role)
                logins.append(f"{username}/{password} ({role})")
        key_notes = [_demo_key(db, settings, body) for body in (congress, committee)]
    return "\n".join([
        f"sample data loaded: {DEMO_CONGRESS}{DEMO_SITTING} ({len(rows)} deputies, "
        f"{DEMO_PRESENT} checked in, 2 items) and {DEMO_COMMITTEE}{DEMO_COMMITTEE_SITTING} "
        f"({len(crows)} members, 1 item)",
        "demo logins 演示登录: " + (", ".join(logins) or "(operators already exist)"),
        *key_notes,
    ])


def _demo_key(db, settings, body) -> str:
    """Give a sample body its signing key, or adopt the one already in the keys folder."""
    try:
        passphrase = body_passphrase(settings, body.id) if settings is not None else None
        if not passphrase:
            return (f"no signing key for {body.name}: set BALLOT_KEY_PASSPHRASE, then "
                    f"`ballot-service keys create {body.id}`")
        key = create_body_key(db, settings.keys_dir, passphrase, body, reuse=True)
    except BallotError as exc:
        return f"no signing key for {body.name}: {exc.message}"
    return f"signing key {key.name} for {body.name} (fingerprint 指纹 {key.fingerprint})"


commands = [serve, demo]
