"""The console's home page: bodies (congress, standing committee) and their signing keys."""
from __future__ import annotations

from flask import render_template, request, url_for
from sqlalchemy import func, select

from ballot_service import vocab
from ballot_service.crypto import keys
from ballot_service.domain import grants
from ballot_service.domain.sittings import create_body, create_body_key, get_body
from ballot_service.errors import BallotError, Forbidden
from ballot_service.models import Body, Member, Operator
from ballot_service.vocab import Role
from ballot_service.web.common import get_db, settings
from ballot_service.web.console.blueprint import bp
from ballot_service.web.console.common import run_action
from ballot_service.web.i18n import t
from ballot_service.web.roles import OWN, SERVICE, in_reach, requires


@bp.get("/console")
@requires(Role.SUPERUSER, Role.SECRETARIAT, Role.AUDITOR, body=OWN)
def home():
    db = get_db()
    bodies = db.scalars(select(Body).where(in_reach(Body.id)).order_by(Body.id)).all()
    counts = dict(db.execute(select(Member.body_id, func.count()).where(Member.in_office.is_(True))
                             .group_by(Member.body_id)).all())
    fingerprints = {}
    for b in bodies:
        if b.key_name:
            try:
                fingerprints[b.id] = keys.fingerprint(keys.load_public_key(
                    keys.public_path(settings().keys_dir, b.key_name)))
            except BallotError:
                fingerprints[b.id] = None
    return render_template("console/home.html", bodies=bodies, counts=counts, fingerprints=fingerprints,
                           body_kinds=vocab.labels_of(vocab.BodyKind))


@bp.post("/console/bodies")
@requires(Role.SUPERUSER, Role.SECRETARIAT, body=SERVICE)
def body_create():
    form = request.form
    return run_action(lambda db: create_body(db, form.get("name", "").strip(), form.get("kind", "")),
                      t("已创建机构。", "Body created."), url_for(".home"))[0]


@bp.post("/console/bodies/<int:body_id>/unlock")
@requires(Role.SECRETARIAT, body="body_id")
def body_unlock(body_id: int):
    """A body's secretariat lets a login of that body alone, locked out after failed
    attempts, try again (#17). Another body's login, or one of several bodies, is refused
    with the same words as an unknown name, so the form tells nobody which names exist."""
    username = request.form.get("username", "").strip()

    def unlock(db):
        op = db.scalar(select(Operator).where(Operator.username == username[:64]))
        if op is None or not grants.serves_only(op, body_id):
            raise Forbidden(f"{username[:64]} is not a login of this body", where="username",
                            zh=f"{username[:64]} 不是本机构的登录")
        grants.unlock_login(db, op.username)

    return run_action(unlock, t(f"已解除 {username[:64]} 的登录锁定。", f"{username[:64]} may log in again."),
                      url_for(".home"))[0]


@bp.post("/console/bodies/<int:body_id>/key")
@requires(Role.SUPERUSER, Role.SECRETARIAT, body="body_id")
def body_key(body_id: int):
    def make(db):
        s = settings()
        return create_body_key(db, s.keys_dir, keys.body_passphrase(s, body_id), get_body(db, body_id))

    return run_action(make, t("已生成签名密钥，请公布其指纹。", "Signing key created; publish its fingerprint."),
                      url_for(".home"))[0]
