"""What every console page shares: running one action and showing its outcome on the page
(run_action), reading whole numbers from a form, and the labels templates ask for."""
from __future__ import annotations

from flask import flash, redirect

from ballot_service import vocab
from ballot_service.domain import sittings
from ballot_service.errors import BallotError, InvalidInput
from ballot_service.web.common import finish_refusal, get_db
from ballot_service.web.console import bp
from ballot_service.web.i18n import current_language, t

bp.app_template_test("has_result")(sittings.has_result)


@bp.app_context_processor
def _labels():
    return {"kind_label": lambda k: t(*vocab.label_pair(k, vocab.ItemKind)),
            "body_kind_label": lambda k: t(*vocab.label_pair(k, vocab.BodyKind)),
            "status_label": lambda k: t(*vocab.status_name(k))}


def run_action(action, success: str, back: str):
    """Run `action(db)` and commit, flashing `success`; or roll back (keeping an audited
    refusal) and flash the reason. Returns (redirect to `back`, action's result or None)."""
    db = get_db()
    try:
        result = action(db)
        db.commit()
    except BallotError as exc:
        finish_refusal(exc)
        where = f" （{exc.where}）" if exc.where else ""
        flash(f"{exc.text(current_language())}{where}", "error")
        return redirect(back), None
    if success:
        flash(success, "ok")
    return redirect(back), result


def form_int(form, name: str, required: bool = True) -> int | None:
    """A whole number typed into a form field; None when empty and not required."""
    raw = (form.get(name) or "").strip()
    if not raw:
        if required:
            raise InvalidInput(t(f"缺少 {name}", f"{name} is missing"), where=name)
        return None
    if not raw.isdigit():
        raise InvalidInput(t(f"{name} 须为非负整数", f"{name} must be a whole number"), where=name)
    return int(raw)
