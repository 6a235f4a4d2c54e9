"""Running the service: `serve` (granian, or Flask's dev server with --dev) and `demo`
(the sample data of demo_data.py loaded once, then serve)."""
from __future__ import annotations

import gc
import os
import secrets
import socket
import sys
from pathlib import Path

import click
from granian import Granian
from granian.constants import Interfaces, SSLProtocols
from sqlalchemy import make_url

from ballot_service import create_app
from ballot_service.cli.demo_data import DEMO_CONGRESS, DEMO_SITTING, load_demo
from ballot_service.cli.ops_cmd import checks_option, start_checks, tls_files, tls_option
from ballot_service.config import PROJECT_ROOT, ConfigError, Settings
from ballot_service.db import make_engine
from ballot_service.migrate import upgrade
from ballot_service.ops.doctor import check_secret_key
from ballot_service.web.asgi import create_asgi_app


def _server_options(f):
    f = checks_option(tls_option(f))
    f = click.option("--dev", is_flag=True,
                     help="Use Flask's development server (auto-debug; never for a real sitting).")(f)
    f = click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
                     help="server worker processes (each runs --threads threads).")(f)
    f = click.option("--threads", type=click.IntRange(1, 256), default=16, show_default=True,
                     help="threads per worker for requests (the display's event streams and secret casts hold none: "
                          "web/asgi.py, web/cast_on_loop.py). More threads than cores' worth of work only contend "
                          "for the GIL (measured with benchmarks/bench_casts.py).")(f)
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
# How long a thread waiting for Python's GIL waits at most (Python's default: 5 ms). A worker's
# batch of casts is stored on its group-commit thread while its event loop checks and seals the
# next casts (web/cast_on_loop.py); the batch gives up the GIL at each of its ~8 database
# calls (its fsync included) and waited up to 5 ms for it each time: tens of ms per batch.
SWITCH_INTERVAL_S = 0.001


def asgi_app():
    """granian's factory, called in each worker: the Flask app wrapped for ASGI (web/asgi.py)
    on the number of threads `serve` was given."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    app = create_asgi_app(create_app(), threads=int(os.environ.get(THREADS_ENV, "16")))
    settle_heap()
    return app


def settle_heap() -> None:
    """Keep the objects of start-up (modules, the app, SQLAlchemy's mappers: ~160,000) out of
    Python's full garbage collections. A full collection walks every tracked object with the
    whole worker stopped, event loop and group-commit writer included: 120-200 ms each on this
    machine, a few times a minute under casting, and every cast in flight waited for it
    (benchmarks/bench_casts.py: the p99). Frozen, they are never walked again; what the
    worker allocates afterwards is collected as before."""
    gc.collect()
    gc.freeze()


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


commands = [serve, demo]
