"""Can every body's signing key be unlocked? Each body's key has its own passphrase (or the
shared one, crypto/keys.passphrase_for); the server checks them all when it starts and
refuses to start naming the body whose key it cannot unlock, not a file path (`doctor` says
the same, ops/doctor.py)."""
from __future__ import annotations

from sqlalchemy import inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ballot_service.crypto import keys
from ballot_service.errors import BallotError, KeyFileError
from ballot_service.models import Body


def bodies(engine: Engine) -> list[tuple[int, str]]:
    """(id, name) of every body, in id order; [] before the schema exists."""
    with engine.connect() as conn:
        if "bodies" not in inspect(conn).get_table_names():
            return []
        return [(r.id, r.name) for r in conn.execute(select(Body.id, Body.name).order_by(Body.id))]


def body_key_states(settings, of_bodies: list[tuple[int, str]]) -> list[tuple[int, str, object]]:
    """(body id, body name, its unlocked SigningKey, the BallotError met unlocking it, or None
    when the body has no key file yet) for each of `of_bodies` ((id, name) pairs)."""
    out = []
    for body_id, name in of_bodies:
        if not keys.private_path(settings.keys_dir, keys.body_key_name(body_id)).exists():
            out.append((body_id, name, None))
            continue
        try:
            out.append((body_id, name, keys.body_signing_key(settings, body_id)))
        except BallotError as exc:
            out.append((body_id, name, exc))
    return out


def require_every_body_key(settings, engine: Engine) -> None:
    """Raise KeyFileError naming each body whose key exists but cannot be unlocked. A database
    that cannot be read is left to the database check (ops/doctor.py, run by `serve`)."""
    try:
        of_bodies = bodies(engine)
    except SQLAlchemyError:
        return
    failed = [(body_id, name, err) for body_id, name, err in body_key_states(settings, of_bodies)
              if isinstance(err, BallotError)]
    if failed:
        raise KeyFileError(
            "cannot unlock the signing key of " + "; ".join(
                f"body {body_id} {name}: {err.message}" for body_id, name, err in failed),
            where="keys", zh="无法解锁以下机构的签名密钥：" + "；".join(
                f"{name}（机构 {body_id}）：{err.zh or err.message}" for body_id, name, err in failed))
