"""`ballot-service audit`: export the audit bundle, and verify one offline."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ballot_service.bundle.errors import BundleInvalid
from ballot_service.bundle.export import export_bundle
from ballot_service.bundle.verify import verify_bundle
from ballot_service.cli.setup import db_session
from ballot_service.config import Settings
from ballot_service.errors import BallotError


@click.group("audit", help="审计包 · Audit bundle: export it, or verify one offline.")
def audit() -> None:
    pass


@audit.command("export", help="Write a body's audit bundle (its own chain; --session: one session's items "
                              "only) to OUT_DIR. Without --body or --session: the database's only body.")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--body", "body_id", type=int, default=None, help="The body whose bundle to write.")
@click.option("--session", "sitting_id", type=int, default=None, help="Only this session's items.")
def export_cmd(out_dir: str, body_id: int | None, sitting_id: int | None) -> None:
    settings = Settings.from_env()
    with db_session() as db:
        path = export_bundle(db, settings, Path(out_dir), body_id=body_id, sitting_id=sitting_id)
    click.echo(f"audit bundle written to {path}")


@audit.command("verify", help="Check the audit bundle BUNDLE offline. Exit 0 when every check holds, "
                              "1 with the first failed check otherwise.")
@click.argument("bundle", type=click.Path())
@click.option("--key", "key", multiple=True,
              help="The body's public key (PEM file) or its fingerprint, obtained independently; "
                   "every signature in the bundle must be by this key. May be repeated.")
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="A `scan-images export` folder: check every page image in it against the bundle's page "
                   "hashes (only for the auditors who may see ballots).")
def verify_cmd(bundle: str, key: tuple[str, ...], images: str | None) -> None:
    try:
        s = verify_bundle(Path(bundle), list(key) or None, Path(images) if images else None)
    except BundleInvalid as exc:
        where = f" [{exc.where}]" if exc.where else ""
        click.echo(f"核验未通过 FAILED: {exc.message}{where}", err=True)
        sys.exit(1)
    except BallotError as exc:
        click.echo(f"核验未通过 FAILED: {exc.message}", err=True)
        sys.exit(1)
    keys = ", ".join(f"{n} ({fp})" for n, fp in s["keys"].items())
    click.echo("核验通过 OK: every check holds")
    click.echo(f"  events {s['events']}, head {s['head'][:16]}…, checkpoints {s['checkpoints']}")
    click.echo(f"  items {s['items']}, rounds recounted {s['rounds_recounted']}, ballots {s['ballots']}, "
               f"records {s['records']}")
    click.echo(f"  scanned pages {s['scanned_pages']} (hashes)" + (
        f", images checked {s['images_checked']}, pages without an image {s['pages_without_image']}"
        if images else ""))
    click.echo(f"  keys: {keys}" + ("" if key else "  (no --key given: compare the fingerprint with the "
                                                   "published one)"))
    for sess in s["sessions"]:
        if sess["closed"]:
            click.echo(f"  session {sess['id']} {sess['name']}: closed (已闭会), signed checkpoint at event "
                       f"{sess['closed_at_event']}")
        else:
            click.echo(f"  session {sess['id']} {sess['name']}: not closed (未闭会): no session-close checkpoint yet")
    if s["events_after_last_checkpoint"]:
        click.echo(f"  note: the last {s['events_after_last_checkpoint']} events are after the last signed "
                   f"checkpoint")


commands = [audit]
