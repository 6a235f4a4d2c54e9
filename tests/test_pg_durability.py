"""A receipt means the cast is durable: on a PostgreSQL server whose default is
synchronous_commit = off (the throwaway test server's, or a careless configuration), the
service's connections still commit synchronously; a stronger setting chosen by the DBA (for a
synchronous standby: remote_apply) is left as it is."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, make_url, text

from ballot_service.db import make_engine

PG_URL = os.environ.get("BALLOT_TEST_DATABASE_URL", "")
pytestmark = pytest.mark.skipif(not PG_URL.startswith("postgresql"), reason="PostgreSQL only")


def _setting(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SHOW synchronous_commit")).scalar_one()


def test_connections_commit_synchronously_whatever_the_server_default(db_url):
    name = make_url(db_url).database
    plain = create_engine(db_url)
    engine = make_engine(db_url)
    try:
        with plain.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
            conn.commit()
        assert _setting(plain) == "off"
        assert _setting(engine) == "on"
        with plain.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = remote_apply'))
            conn.commit()
        engine.dispose()
        assert _setting(engine) == "remote_apply"
    finally:
        plain.dispose()
        engine.dispose()
