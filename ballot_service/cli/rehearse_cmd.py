"""`ballot-service rehearse`: run a scenario file through the live code paths (预演)."""
from __future__ import annotations

import sys

import click

from ballot_service.errors import BallotError
from ballot_service.rehearsal import rehearse as run


@click.command("rehearse", help="Rehearse (预演) a session from SCENARIO (ballot-scenario/1 JSON) through the "
                                "same endpoints, signing, intake, tally, records and audit as a live session. "
                                "Writes OUT/results.json, OUT/records/ and OUT/audit/.")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="folder for the outputs")
@click.option("--database", "database", default=None,
              help="database URL to rehearse in (default: a fresh SQLite file under OUT/.work)")
@click.option("--paper-via-scanner", is_flag=True,
              help="count paper items through the counting station's scanner: print their ballots, draw the "
                   "scenario's marks, read the pages, and let the two tellers decide what the reader queues")
@click.option("--lang", "lang", type=click.Choice(["zh", "en"]), envvar="BALLOT_LANGUAGE", default="zh",
              show_default=True, help="language of the error messages (default: BALLOT_LANGUAGE, else zh)")
def rehearse(scenario: str, out: str, database: str | None, paper_via_scanner: bool, lang: str) -> None:
    try:
        results = run(scenario, out, database, paper_via_scanner)
    except BallotError as exc:
        click.echo(refusal_text(exc, scenario, lang), err=True)
        sys.exit(2)
    for item in results["items"]:
        click.echo(f"{item['key']}: {item['status']}")
    click.echo(f"wrote {out}/results.json, {out}/records/, {out}/audit/")


def refusal_text(exc: BallotError, scenario: str, lang: str) -> str:
    """What is wrong with the scenario and where: the file, then the line or JSON path."""
    where = exc.where or ""
    at = where if where.startswith(scenario) else f"{scenario}{'，' if lang == 'zh' else ', '}{where}" if where \
        else scenario
    if lang == "zh":
        return f"错误：场景被拒绝（{at}）：{exc.text('zh')}"
    return f"error: scenario refused ({at}): {exc.message}"


commands = [rehearse]
