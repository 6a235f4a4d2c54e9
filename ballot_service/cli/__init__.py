"""The `ballot-service` command. Each group lives in its own module under cli/."""
from __future__ import annotations

import click

from .setup import setup_commands


@click.group(help="人大会议表决计票服务 · Ballot service for people's congress sessions.")
def main() -> None:
    pass


for command in setup_commands:
    main.add_command(command)


def _optional(module: str, attr: str = "commands") -> None:
    """Groups whose modules exist are added; keeps each feature's CLI in its own file."""
    import importlib

    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{module}":
            raise
        return
    for command in getattr(mod, attr):
        main.add_command(command)


for _name in ("keys_cmd", "ballots_cmd", "serve_cmd", "rehearse_cmd", "audit_cmd", "operator_cmd"):
    _optional(_name)
