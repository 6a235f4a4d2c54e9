"""The `ballot-service` command. Each group lives in its own module under cli/."""
from __future__ import annotations

import click

from ballot_service.cli import (
    audit_cmd,
    ballots_cmd,
    keys_cmd,
    operator_cmd,
    ops_cmd,
    rehearse_cmd,
    scan_cmd,
    serve_cmd,
    setup,
)


@click.group(help="人大会议表决计票服务 · Ballot service for people's congress sessions.")
def main() -> None:
    pass


for _module in (setup, keys_cmd, ballots_cmd, serve_cmd, rehearse_cmd, audit_cmd, operator_cmd, ops_cmd, scan_cmd):
    for _command in _module.commands:
        main.add_command(_command)
