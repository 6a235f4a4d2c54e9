"""What every console page shares: running one action and showing its outcome on the page
(run_action), reading whole numbers from a form, and the labels templates ask for."""
from __future__ import annotations

from flask import flash, redirect

from ballot_service import vocab
from ballot_service.domain import sittings
from ballot_service.errors import BallotError, InvalidInput
from ballot_service.web.common import finish_refusal, get_db
from ballot_service.web.console.blueprint import bp
from ballot_service.web.i18n import current_language, t
from ballot_service.web.roles import login_may

bp.app_template_test("has_result")(sittings.has_result)


@bp.app_context_processor
def _labels():
    return {"kind_label": lambda k: t(*vocab.label_pair(k, vocab.ItemKind)),
            "body_kind_label": lambda k: t(*vocab.label_pair(k, vocab.BodyKind)),
            "status_label": lambda k: t(*vocab.status_name(k)), "may": login_may,
            "office_label": lambda k: t(*vocab.label_pair(k or "", vocab.Office)),
            "stage_label": lambda k: t(*vocab.label_pair(k, vocab.ElectionStage))}


def pipe_lines(text: str):
    """(line number, its `|`-separated parts stripped) for each non-blank line of a textarea:
    the candidates, nominees, options and grading steps the console's forms take."""
    for n, line in enumerate((ln.strip() for ln in text.splitlines()), start=1):
        if line:
            yield n, [p.strip() for p in line.split("|")]


def run_action(action, success: str, back: str, on_refusal=None):
    """Run `action(db)` and commit, flashing `success`; or roll back (keeping an audited
    refusal) and flash the reason. Returns (redirect to `back`, action's result or None);
    on a refusal the answer is `on_refusal(db)` instead of the redirect, when given."""
    db = get_db()
    try:
        result = action(db)
        db.commit()
    except BallotError as exc:
        finish_refusal(exc)
        flash(refusal_text(exc), "error")
        return (on_refusal(db) if on_refusal else redirect(back)), None
    if success:
        flash(success, "ok")
    return redirect(back), result


# What the console's form fields are called on screen: a refusal names the field a person sees,
# not the name the code uses.
FIELD_LABELS = {
    "key": ("编号", "key"), "title": ("标题", "title"), "kind": ("类型", "kind"),
    "places": ("应选数", "number of places"), "candidates": ("候选项", "candidates"),
    "base": ("通过基数", "base"), "majority": ("多数", "majority"), "channel": ("渠道", "channel"),
    "time_limit_min": ("限时（分钟）", "time limit (minutes)"), "minutes": ("延长分钟数", "minutes"),
    "options": ("测评选项", "options"), "steps": ("分档", "steps"), "grading.steps": ("分档", "steps"),
    "member": ("代表证号", "member number"), "count": ("张数", "count"), "name": ("名称", "name"),
}


def field_label(name: str) -> str:
    zh_en = FIELD_LABELS.get(name)
    return t(*zh_en) if zh_en else name


def refusal_text(exc: BallotError) -> str:
    """A refusal as the console shows it: the message in the screen's language, then where, when
    that is something the person can find on the page (a field they see, a line, a file row)."""
    text = exc.text(current_language())
    where = exc.where or ""
    if where in FIELD_LABELS:
        where = field_label(where)
    elif where.startswith("candidates line "):
        where = t(f"候选项第 {where.rsplit(' ', 1)[-1]} 行", where)
    elif where.isascii() and where.replace("_", "").replace(".", "").isalnum():
        where = ""  # an internal name (item, round, session…): the message already says what
    return f"{text} （{where}）" if where and where not in text else text


def form_int(form, name: str, required: bool = True) -> int | None:
    """A whole number typed into a form field; None when empty and not required."""
    raw = (form.get(name) or "").strip()
    label = field_label(name)
    if not raw:
        if required:
            raise InvalidInput(t(f"请填写{label}", f"{label} is missing"), where=name)
        return None
    if not raw.isdigit():
        raise InvalidInput(t(f"{label}须为非负整数", f"{label} must be a whole number"), where=name)
    return int(raw)
