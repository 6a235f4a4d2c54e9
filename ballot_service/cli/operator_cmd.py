"""`ballot-service operator`: the console's logins and their roles per body (superuser,
secretariat, auditor, presiding screen), disabling, unlocking and new passwords."""
from __future__ import annotations

import click
from sqlalchemy import select

from ballot_service.cli.setup import db_session
from ballot_service.domain import grants
from ballot_service.domain.operators import create_operator
from ballot_service.domain.sittings import get_body
from ballot_service.models import Body, Operator
from ballot_service.vocab import OperatorRole

ROLE = click.Choice([r.value for r in OperatorRole])
BODY = click.option("--body", "body_id", type=int, default=None,
                    help="the body's id (`ballot-service operator list` and the console show it); "
                         "without it, the role holds in every body")


def _role_arguments(command):
    """USERNAME ROLE [--body ID], as add, grant and revoke take them."""
    return click.argument("username")(click.argument("role", type=ROLE)(BODY(command)))


def _on_operator(change, username: str, *args):
    """`change`(db, the operator USERNAME, *args) in its own transaction; its result."""
    with db_session() as db:
        return change(db, grants.get_operator(db, username), *args)


@click.group("operator", help="Console logins: superuser (系统管理员), secretariat (秘书处), auditor (审计), "
                              "display (大屏), each role granted per body.")
def operator() -> None:
    pass


@operator.command("add", help="Add an operator USERNAME with ROLE in one body (--body ID). "
                              "The password is asked for twice (or read from BALLOT_NEW_PASSWORD); "
                              "only its hash is stored.")
@_role_arguments
@click.password_option("--password", envvar="BALLOT_NEW_PASSWORD", help="at least 8 characters")
def operator_add(username: str, role: str, body_id: int | None, password: str) -> None:
    with db_session() as db:
        if body_id is not None:
            get_body(db, body_id)
        create_operator(db, username, password, role, body_id)
    click.echo(f"operator {username} ({role}) created")


@operator.command("list", help="List operators, their roles per body (role@body, * for every body) "
                               "and whether they are disabled.")
def operator_list() -> None:
    with db_session() as db:
        names = dict(db.execute(select(Body.id, Body.name)).all())
        for op in db.scalars(select(Operator).order_by(Operator.username)):
            state = "\tdisabled" if op.disabled_at is not None else ""
            click.echo(f"{op.username}\t{' '.join(grants.describe(op, names))}{state}")


@operator.command("grant", help="Give USERNAME the role ROLE in body --body ID (or in every body). "
                                "Ends the operator's current logins.")
@_role_arguments
def operator_grant(username: str, role: str, body_id: int | None) -> None:
    _on_operator(grants.grant_role, username, role, body_id)
    click.echo(f"{username}: {role} granted")


@operator.command("revoke", help="Take ROLE in body --body ID (without --body: the every-body grant) "
                                 "from USERNAME. Ends the operator's current logins.")
@_role_arguments
def operator_revoke(username: str, role: str, body_id: int | None) -> None:
    taken = _on_operator(grants.revoke_role, username, role, body_id)
    click.echo(f"{username}: {role} revoked" if taken else f"{username} did not hold that grant")


@operator.command("disable", help="Disable USERNAME: its logins end now and it cannot log in.")
@click.argument("username")
def operator_disable(username: str) -> None:
    _on_operator(grants.set_disabled, username, True)
    click.echo(f"{username} disabled")


@operator.command("enable", help="Let a disabled USERNAME log in again.")
@click.argument("username")
def operator_enable(username: str) -> None:
    _on_operator(grants.set_disabled, username, False)
    click.echo(f"{username} enabled")


@operator.command("passwd", help="Set USERNAME's password (asked twice, or BALLOT_NEW_PASSWORD); "
                                 "its current logins end.")
@click.argument("username")
@click.password_option("--password", envvar="BALLOT_NEW_PASSWORD", help="at least 8 characters")
def operator_passwd(username: str, password: str) -> None:
    _on_operator(grants.set_password, username, password)
    click.echo(f"{username}: password changed")


@operator.command("unlock", help="Let USERNAME, locked out after failed logins, try again now.")
@click.argument("username")
def operator_unlock(username: str) -> None:
    with db_session() as db:
        grants.unlock_login(db, username)
    click.echo(f"{username} unlocked")


commands = [operator]
