"""ballot-service: voting and ballot tallying for people's congress sessions."""
from __future__ import annotations

import os

from flask import Flask, g

from ballot_service import web
from ballot_service.config import Settings
from ballot_service.db import make_engine, make_read_engine, make_sessionmaker
from ballot_service.domain.body_keys import require_every_body_key
from ballot_service.web.cast_endpoint import CastEndpoint
from ballot_service.web.proxies import TrustedProxies


def create_app(config: dict | None = None) -> Flask:
    """Application factory. `config` overrides environment settings (tests pass their own)."""
    settings = Settings.from_env({**_environ(), **(config or {})})
    app = Flask(
        __name__,
        template_folder=str(settings.templates_dir),
        instance_path=str(settings.instance_path),
    )
    app.config["SETTINGS"] = settings
    app.config["SECRET_KEY"] = settings.secret_key
    # Rosters and terminal lists from the secretariat can be large; terminals get
    # settings.max_body_bytes (64 KB) on their own blueprints (terminal_api.py, station_api.py).
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024
    engine = make_engine(settings.database_url)
    # Refuse to start, naming the body, rather than fail at the first vote it signs.
    try:
        require_every_body_key(settings, engine)
    except BaseException:
        engine.dispose()
        raise
    app.extensions["ballot_engine"] = engine
    app.extensions["ballot_sessionmaker"] = make_sessionmaker(engine)
    app.extensions["ballot_read_engine"] = make_read_engine(engine)

    @app.teardown_appcontext
    def _close_db(exc):
        db = g.pop("db", None)
        if db is not None:
            if exc is not None:
                db.rollback()
            db.close()

    web.register(app)
    # The terminals' cast intake is served below Flask (cast_endpoint.py says why).
    app.wsgi_app = CastEndpoint(app.wsgi_app, settings, app.extensions["ballot_sessionmaker"])
    if settings.trusted_proxies:  # outermost: every route, the cast intake's too, sees the client's address
        app.wsgi_app = TrustedProxies(app.wsgi_app, settings.trusted_proxies)
    return app


def _environ() -> dict:
    return dict(os.environ)
