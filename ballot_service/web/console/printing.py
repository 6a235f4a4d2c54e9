"""Paper ballots from the console: starting a print job, polling its progress, and
downloading the PDFs it wrote (each once: the file is deleted as it is sent)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from flask import abort, current_app, flash, redirect, request, send_file, url_for

from ballot_service.domain import print_jobs
from ballot_service.errors import BallotError
from ballot_service.vocab import Role
from ballot_service.web.common import get_db, settings
from ballot_service.web.console.blueprint import bp
from ballot_service.web.console.common import form_int
from ballot_service.web.i18n import current_language
from ballot_service.web.roles import requires


def _transactions(maker):
    """`open_db` for print_batch: each `with open_db() as db` is one session and transaction
    of the print job's own (its thread outlives the request)."""
    @contextmanager
    def open_db():
        db = maker()
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()

    return open_db


@bp.post("/console/items/<int:item_id>/print")
@requires(Role.SECRETARIAT, body="item_id")
def print_ballots(item_id: int):
    """Start printing paper ballots; the item page shows the job's progress."""
    try:
        count = form_int(request.form, "count")
        print_jobs.check_printable(get_db(), item_id, count)
    except BallotError as exc:
        flash(exc.text(current_language()), "error")
        return redirect(url_for(".item_page", item_id=item_id))
    # The check only read; end its transaction (SQLite: the write lock) before the job's own
    # transactions begin (its row first, committed before this request answers).
    get_db().rollback()
    job_id = print_jobs.start_print_job(_transactions(current_app.extensions["ballot_sessionmaker"]), settings(),
                                        item_id, count, current_language())
    return redirect(url_for(".item_page", item_id=item_id, job=job_id))


@bp.get("/console/jobs/<job_id>")
@requires(Role.SECRETARIAT, body="job_id")
def job_state(job_id: str):
    state = print_jobs.read_job(get_db(), job_id)
    if state is None:
        abort(404)
    return current_app.response_class(state, mimetype="application/json")


@bp.get("/console/items/<int:item_id>/ballots/<name>")
@requires(Role.SECRETARIAT, body="item_id")
def ballot_file(item_id: int, name: str):
    if not (name.startswith(f"item{item_id}-round") and name.endswith(".pdf")) or "/" in name or ".." in name:
        abort(404)
    path = Path(settings().ballots_dir) / name
    try:
        f = open(path, "rb")
    except (FileNotFoundError, IsADirectoryError):
        abort(404)
    # Downloaded once, then gone: the file's page order is the printed stack's order, which
    # with the queue at the desk would give the hand-out order. The open handle still sends
    # it; a failed download is printed again as a new batch (the lost one's ballots are spares).
    path.unlink()
    return send_file(f, mimetype="application/pdf", as_attachment=True, download_name=name)
