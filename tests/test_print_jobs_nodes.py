"""Print jobs with several app nodes (issue 21 item 3): a job started on one node is polled on
another (its progress is a database row, not a file of the node that runs it), and a job whose
node stopped is reported failed instead of running for ever."""
from __future__ import annotations

import datetime as dt
import json
import re
import time

from console_support import post
from helpers_live import OPERATOR, setup_sitting

from ballot_service import create_app
from ballot_service.db import database_now
from ballot_service.domain import print_jobs
from ballot_service.models import PrintJob


def _console(app):
    client = app.test_client()
    r = post(client, "/login", {"username": OPERATOR[0], "password": OPERATOR[1]})
    assert r.status_code == 302, r.get_data(as_text=True)
    return client


def test_a_print_job_started_on_one_node_is_followed_on_another(app, api, settings_env, tmp_path):
    s = setup_sitting(api, members=3, channel="paper", open_vote=False)
    # Node B: a second app on the same database and ballots folder, its own instance folder.
    other = create_app({**settings_env, "BALLOT_INSTANCE_PATH": str(tmp_path / "node-b-instance")})
    other.config["TESTING"] = True
    r = post(_console(app), f"/console/items/{s.item_id}/print", {"count": "3"})
    job = re.search(r"job=([0-9a-f]+)", r.headers["Location"]).group(1)
    node_b = _console(other)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answer = node_b.get(f"/console/jobs/{job}")
            assert answer.status_code == 200, answer.get_data(as_text=True)
            state = answer.get_json()
            if state["state"] != "running":
                break
            time.sleep(0.2)
        assert state["state"] == "done" and state["done"] == state["total"] == 3, state
        # The PDFs are in the shared ballots folder: node B serves them.
        pdf = node_b.get(f"/console/items/{s.item_id}/ballots/{state['files'][0]}")
        assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
        pdf.close()
        assert node_b.get("/console/jobs/0123456789abcdef").status_code == 404
    finally:
        other.extensions["ballot_engine"].dispose()


def test_a_running_job_whose_node_stopped_is_reported_failed(app, api):
    s = setup_sitting(api, members=2, channel="paper", open_vote=False)
    db = app.extensions["ballot_sessionmaker"]()
    try:
        now = database_now(db)
        db.add_all([
            PrintJob(id="a1", item_id=s.item_id, state="running", done=1, total=5, updated_at=now),
            PrintJob(id="a2", item_id=s.item_id, state="running", done=1, total=5,
                     updated_at=now - print_jobs.STALE_AFTER - dt.timedelta(seconds=5)),
        ])
        db.commit()
        fresh, stale = json.loads(print_jobs.read_job(db, "a1")), json.loads(print_jobs.read_job(db, "a2"))
    finally:
        db.close()
    assert fresh == {"state": "running", "done": 1, "total": 5, "item_id": s.item_id}
    assert stale["state"] == "failed" and "stopped" in stale["error"] and "重新打印" in stale["error"], stale
    assert print_jobs.read_job(app.extensions["ballot_sessionmaker"](), "../etc") is None
