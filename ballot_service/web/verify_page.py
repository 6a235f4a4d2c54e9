"""Public page /verify/<record_id>: is this signed record of a result genuine? Re-verifies the stored
signature with the body's public key from the keys folder and shows what the record states."""
from __future__ import annotations

import binascii
import json

from flask import Blueprint, current_app, render_template
from sqlalchemy.orm import Session

from ballot_service import vocab
from ballot_service.crypto import keys
from ballot_service.errors import BallotError
from ballot_service.formats.encoding import b64url_decode
from ballot_service.models import Record
from ballot_service.vocab import Role
from ballot_service.web.common import get_db
from ballot_service.web.roles import requires

bp = Blueprint("verify_page", __name__)


def check_record(db: Session, keys_dir, record_id: str) -> dict | None:
    """What the page shows; None when there is no such record. `genuine` is True only when the
    signature verifies under the body's key on file and the fingerprints agree; `reason` is a
    (zh, en) pair otherwise."""
    rec = db.get(Record, record_id) if isinstance(record_id, str) and len(record_id) <= 64 else None
    if rec is None:
        return None
    try:
        content = json.loads(rec.body_json)
    except ValueError:
        return {"record": rec, "content": None, "genuine": False, "reason": ("记录内容已损坏", "the record text is damaged"),
                "fingerprint": None}
    body_id = (content.get("body") or {}).get("id")
    reason = None
    fp = None
    try:
        pub = keys.body_public_key(keys_dir, int(body_id))
        fp = keys.fingerprint(pub)
        sig = b64url_decode(rec.signature)
        keys.verify_signature(pub, sig, rec.body_json.encode("utf-8"))
        if fp != rec.key_fingerprint or fp != content.get("key_fingerprint"):
            reason = ("签名密钥指纹不符", "the key fingerprint does not match")
    except keys.SignatureInvalid:
        reason = ("签名无效", "the signature does not verify")
    except (BallotError, TypeError, ValueError, binascii.Error):
        reason = ("找不到该机构的公钥", "the body's public key is not available")
    return {"record": rec, "content": content, "genuine": reason is None, "reason": reason, "fingerprint": fp}


@bp.get("/verify/<record_id>")
@requires(Role.PUBLIC)
def verify_record(record_id: str):
    settings = current_app.config["SETTINGS"]
    found = check_record(get_db(), settings.keys_dir, record_id)
    if found is None:
        return render_template("verify.html", found=None, record_id=record_id), 404
    content = found["content"] or {}
    titles = {c["key"]: c["title"] for c in (content.get("item") or {}).get("candidates", [])}
    kind = (content.get("item") or {}).get("kind")
    return render_template("verify.html", found=found, record_id=record_id, c=content, titles=titles,
                           r=content.get("result") or {}, name=vocab.RECORD_NAMES.get(kind),
                           status=vocab.status_name, label=vocab.label_pair)
