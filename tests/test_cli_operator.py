"""`ballot-service operator add/list`: the console's logins, created from the command line."""
from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select
from werkzeug.security import check_password_hash

from ballot_service.cli import main
from ballot_service.models import Operator


def run(settings_env, *args, **env):
    result = CliRunner().invoke(main, list(args), env={**settings_env, **env}, catch_exceptions=False)
    return result.exit_code, result.output


def test_add_stores_only_a_hash_and_lists(settings_env, db):
    assert run(settings_env, "init-db")[0] == 0
    code, out = run(settings_env, "operator", "add", "mishu", "secretariat", BALLOT_NEW_PASSWORD="long-enough-1")
    assert code == 0 and "mishu (secretariat)" in out
    op = db.scalar(select(Operator))
    assert op.password_hash != "long-enough-1" and check_password_hash(op.password_hash, "long-enough-1")
    db.rollback()
    assert run(settings_env, "operator", "list")[1].split() == ["mishu", "secretariat@*"]


def test_bad_input_is_refused_with_the_reason(settings_env):
    run(settings_env, "init-db")
    code, out = run(settings_env, "operator", "add", "x", "secretariat", BALLOT_NEW_PASSWORD="short")
    assert code == 2 and "at least 8 characters" in out
    code, out = run(settings_env, "operator", "add", "x", "king", BALLOT_NEW_PASSWORD="long-enough-1")
    assert code == 2 and "king" in out
    run(settings_env, "operator", "add", "x", "display", BALLOT_NEW_PASSWORD="long-enough-1")
    code, out = run(settings_env, "operator", "add", "x", "auditor", BALLOT_NEW_PASSWORD="long-enough-2")
    assert code == 2 and "exists" in out
