"""`ballot-service operator`: the console's logins (secretariat, auditor, presiding screen)."""
from __future__ import annotations

import click
from sqlalchemy import select

from ballot_service.cli.setup import db_session
from ballot_service.domain.operators import create_operator
from ballot_service.models import Operator


@click.group("operator", help="Console logins: secretariat (秘书处), auditor (审计), display (大屏).")
def operator() -> None:
    pass


@operator.command("add", help="Add an operator USERNAME with ROLE (secretariat, auditor or display). "
                              "The password is asked for twice (or read from BALLOT_NEW_PASSWORD); "
                              "only its hash is stored.")
@click.argument("username")
@click.argument("role", type=click.Choice(["secretariat", "auditor", "display"]))
@click.password_option("--password", envvar="BALLOT_NEW_PASSWORD", help="at least 8 characters")
def operator_add(username: str, role: str, password: str) -> None:
    with db_session() as db:
        create_operator(db, username, password, role)
    click.echo(f"operator {username} ({role}) created")


@operator.command("list", help="List operators and their roles.")
def operator_list() -> None:
    with db_session() as db:
        for op in db.scalars(select(Operator).order_by(Operator.username)):
            click.echo(f"{op.username}\t{op.role}")


commands = [operator]
