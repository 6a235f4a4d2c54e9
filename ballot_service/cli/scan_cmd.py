"""`ballot-service scan`: read scanned paper ballots into a session (the same intake as the
counting station), and `scan-images`: export the kept page images for the auditors who may
see ballots, or discard them after the retention period."""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import click

from ballot_service.cli.setup import db_session
from ballot_service.config import Settings
from ballot_service.domain import scan_recount, scanning
from ballot_service.domain.sittings import get_item, get_sitting
from ballot_service.errors import InvalidInput


@click.command("scan", help="Read scanned ballots (a multi-page PDF, a TIFF, an image, or a folder of JPEG/PNG "
                            "pages) for SESSION_ID: clear ballots are counted through the counting station's "
                            "intake, unclear ones wait for the tellers on the station page. Every page is kept.")
@click.argument("session_id", type=int)
@click.argument("path", type=click.Path(exists=True))
@click.option("--dpi", type=click.IntRange(100, 600), default=200, help="resolution to rasterise PDF pages at")
def scan(session_id: int, path: str, dpi: int) -> None:
    settings = Settings.from_env()
    seen: Counter = Counter()
    with db_session() as db:
        sitting = get_sitting(db, session_id)
        try:
            for out in scanning.take_file(db, settings, sitting, path, dpi):
                db.commit()
                p = out.page
                seen[p.status] += 1
                why = "; ".join(p.reasons) or p.outcome or ""
                click.echo(f"{p.id[:8]} {p.status:9} {why}")
        except InvalidInput as exc:  # not a readable PDF or image
            click.echo(f"错误 error: {exc}", err=True)
            sys.exit(2)
    click.echo("共 total " + ", ".join(f"{k} {v}" for k, v in sorted(seen.items())))


@click.command("recount", help="重新计票: read ITEM_ID's kept scans again and show where they differ from "
                                "the ballots counted (changes nothing). Exit 1 when any page differs.")
@click.argument("item_id", type=int)
@click.option("--round", "round_no", type=int, default=None, help="round number (default: the latest)")
def recount(item_id: int, round_no: int | None) -> None:
    with db_session() as db:
        item = get_item(db, item_id)
        rnd = item.rounds[-1] if round_no is None else next((r for r in item.rounds if r.number == round_no), None)
        if rnd is None:
            click.echo(f"错误 error: item {item_id} has no round {round_no}", err=True)
            sys.exit(2)
        out = scan_recount.recount(db, Settings.from_env(), item, rnd)
    click.echo(f"《{item.title}》第{out['round']}轮: counted {out['counted']}, pages read again {out['pages_read']}, "
               f"same {out['same']}, different {len(out['differ'])}, unclear now {len(out['unclear'])}, "
               f"without a kept page {len(out['no_kept_page'])}")
    for d in out["differ"]:
        click.echo(f"  DIFFERENT {d['serial']} page {d['page_id'][:8]}: counted {d['counted']} / read now {d['read_now']}")
    for u in out["unclear"]:
        click.echo(f"  UNCLEAR page {u['page_id'][:8]}: {'; '.join(u['reasons'])}")
    if out["differ"]:
        sys.exit(1)


@click.group("scan-images", help="Kept scanned pages: export them for the auditors who may see ballots, "
                                 "or discard them after the retention period (their hashes stay in the audit chain).")
def scan_images() -> None:
    pass


@scan_images.command("export", help="Write SESSION_ID's kept page images (PNG) and manifest.json to OUT_DIR.")
@click.argument("session_id", type=int)
@click.argument("out_dir", type=click.Path(file_okay=False))
def export_images(session_id: int, out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    manifest = []
    with db_session() as db:
        for page, image in scanning.export_images(db, session_id):
            (out / f"{page.id}.png").write_bytes(image)
            manifest.append({"page_id": page.id, "sha256": page.sha256, "status": page.status,
                             "round_id": page.round_id})
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    click.echo(f"{len(manifest)} page images written to {out}")


@scan_images.command("discard", help="Delete every kept page image of SESSION_ID (after the retention period).")
@click.argument("session_id", type=int)
@click.option("--yes", is_flag=True, help="do not ask")
def discard_images(session_id: int, yes: bool) -> None:
    if not yes:
        click.confirm(f"Delete every scanned page image of session {session_id}? 确定删除？", abort=True)
    with db_session() as db:
        n = scanning.discard_images(db, session_id)
    click.echo(f"{n} page images deleted; their SHA-256 hashes stay in the audit chain")


commands = [scan, recount, scan_images]
