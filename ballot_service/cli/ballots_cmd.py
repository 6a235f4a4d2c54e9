"""`ballot-service ballots`: print paper ballots, hand them out at the desk, verify one."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ballot_service.cli.setup import db_session
from ballot_service.config import Settings
from ballot_service.crypto import blind_ballots, blind_rsa
from ballot_service.crypto.keys import (
    body_public_key,
    body_signing_key,
    fingerprint,
)
from ballot_service.db import make_engine, make_sessionmaker
from ballot_service.domain import cast_staging, voting
from ballot_service.domain.paper_ballots import hand_out, hand_out_stack, paper_counts, resolve_serial
from ballot_service.domain.print_jobs import print_batch
from ballot_service.domain.sittings import get_item
from ballot_service.errors import Conflict, KeyFileError
from ballot_service.formats import set_sheet
from ballot_service.formats.ballots import (
    MAX_PAPER_BATCH,
    BallotRefused,
    is_round_key_token,
    serial_short,
    text_to_token,
    verify_token,
)
from ballot_service.models import Cast, Item, PaperBallot, Round, Sitting, StagedCast
from ballot_service.vocab import Channel


@click.group("ballots", help="Paper ballots (纸质选票): print, hand out, verify.")
def ballots() -> None:
    pass


def _current_round(item, number: int | None = None):
    if not item.rounds:
        raise Conflict(f"item {item.id} has no round", where="round")
    if number is None:
        return item.rounds[-1]
    for r in item.rounds:
        if r.number == number:
            return r

    raise BallotRefused("wrong_round", f"item {item.id} has no round {number}")


@ballots.command("print", help="Sign COUNT new paper ballots for ITEM_ID's current round and write "
                               "print-ready A4 PDFs (one ballot per page) into the ballots directory. An "
                               "election of a ballot set prints COUNT sheets of the set (its elections on one "
                               "page, more pages only when they do not fit).")
@click.argument("item_id", type=int)
@click.option("--count", "-n", type=click.IntRange(1, MAX_PAPER_BATCH), required=True, help="number of ballots")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="output folder (default: BALLOT_BALLOTS_DIR)")
@click.option("--round", "round_no", type=int, default=None, help="round number (default: the latest)")
@click.option("--processes", type=click.IntRange(1, 16), default=None,
              help="rendering processes (default: number of CPUs, at most 4)")
def ballots_print(item_id: int, count: int, out_dir: str | None, round_no: int | None,
                  processes: int | None) -> None:
    settings = Settings.from_env()
    out = Path(out_dir) if out_dir else settings.ballots_dir
    with click.progressbar(length=count, label="印制选票 printing", file=sys.stderr) as bar:
        try:
            done = print_batch(db_session, settings, item_id, count, out, round_no=round_no,
                               processes=processes, progress=bar.update)
        except BaseException:
            click.echo("nothing recorded; no PDF file was kept", err=True)
            raise
    click.echo(f"{count} ballots for item {item_id} round {done['round']} "
               f"(key {done['fingerprint']}) in {len(done['paths'])} file(s):")
    for p in done["paths"]:
        click.echo(f"  {p}")
    # The page order is the printed stack's order: with the queue at the desk, the hand-out order.
    click.echo("打印后请删除这些文件 delete these files once printed: their page order is the stack's order")


@ballots.command("hand-out", help="Distribution desk: activate a stack of ballots of ITEM_ID before handing it "
                                  "out, each SERIAL_OR_QR_TEXT a scanned QR text, a full serial, or its printed "
                                  "first 8 hex digits. One count for the whole stack, no order within it.")
@click.argument("item_id", type=int)
@click.argument("serial_or_qr_text", nargs=-1, required=True)
def ballots_hand_out(item_id: int, serial_or_qr_text: tuple[str, ...]) -> None:
    settings = Settings.from_env()
    if any(set_sheet.is_set_text(t) for t in serial_or_qr_text):   # a ballot set's sheets
        with db_session() as db:
            item = get_item(db, item_id)
            if not item.ballot_set:
                raise click.UsageError(f"item {item_id} is not in a ballot set: give its own ballots")
            n = hand_out_stack(db, settings, item.sitting, [t.strip() for t in serial_or_qr_text], None)
            counts = paper_counts(db, voting.current_round(item))
        click.echo(f"已发出 handed out: {n} sheet(s) of ballot set {item.ballot_set}, each election's ballot with it; "
                   f"item {item_id}: 发出 {counts['handed_out']} / 印制 {counts['printed']}")
        return
    with db_session() as db:
        item = get_item(db, item_id)
        round_, serials = None, []
        for raw in serial_or_qr_text:
            text = raw.strip()
            if text.startswith("BS1."):
                token = text_to_token(text)
                this = _current_round(item, token["payload"]["round"])
                pub = body_public_key(settings.keys_dir, item.sitting.body_id)
                serial = verify_token(pub, token, body=item.sitting.body_id, session=item.sitting_id, item=item.id,
                                      round_no=this.number)["serial"]
            else:
                this = _current_round(item)
                serial = resolve_serial(db, text, this)
            if round_ is not None and this.id != round_.id:
                raise click.UsageError("a stack holds ballots of one round only")
            round_ = this
            serials.append(serial)
        hand_out(db, serials, round_)
        counts = paper_counts(db, round_)
    click.echo(f"已发出 handed out: {len(serials)} (item {item.id} round {round_.number}); "
               f"发出 {counts['handed_out']} / 印制 {counts['printed']}")


@ballots.command("verify", help="Check one ballot's QR text PAYLOAD: the signature against the body's "
                                "public key and, if the database knows it, whether it was printed, handed "
                                "out or already counted. Exit 0 for a genuine ballot, 1 with the reason otherwise.")
@click.argument("payload")
def ballots_verify(payload: str) -> None:
    settings = Settings.from_env()

    def refuse(reason: str, message: str) -> None:
        click.echo(f"拒绝 REFUSED ({reason}): {message}")
        sys.exit(1)

    try:
        tokens = set_sheet.section_tokens(payload) if set_sheet.is_set_text(payload) else [text_to_token(payload)]
    except BallotRefused as exc:
        refuse(exc.reason, exc.message)
    for token in tokens:   # a ballot set's sheet: each election's ballot on it, one after the other
        _verify_one(settings, token, refuse)


def _verify_one(settings, token: dict, refuse) -> None:
    p = token["payload"]
    if is_round_key_token(token):  # a hybrid vote's paper ballot: the round's key, from the database
        _verify_round_key_ballot(settings, token, refuse)
        return
    try:
        pub = body_public_key(settings.keys_dir, p["body"])
    except KeyFileError as exc:
        click.echo(f"错误 error: cannot check the signature: {exc.message}", err=True)
        sys.exit(2)
    try:
        verify_token(pub, token, body=p["body"], session=p["session"], item=p["item"], round_no=p["round"])
    except BallotRefused as exc:
        refuse(exc.reason, exc.message)
    click.echo(f"签名有效 signature valid: body {p['body']} session {p['session']} item {p['item']} "
               f"round {p['round']}, 票号 {serial_short(p['serial'])} (serial {p['serial']}), "
               f"key {fingerprint(pub)}")
    state = _db_state(p)
    if state is None:
        click.echo("database not available: printed/handed-out state not checked")
        return
    if state == "counted":
        click.echo("状态 state: already counted (已计入); a second submission would be refused as reused")
    elif state == "handed_out":
        click.echo("状态 state: printed and handed out, not yet counted (有效，未计票)")
    elif state == "spare":
        refuse("spare", "签名真实，但此票已印制、尚未发出（备用票）：投入票箱将作为备用票拒收。The signature is "
                        "genuine, but this ballot was never handed out (a spare): the count would refuse it.")
    elif state == "no_round":
        refuse("unknown", f"the database has no round {p['round']} of item {p['item']}")
    elif state == "electronic":
        click.echo("状态 state: not a printed ballot and not yet cast (electronic ballot)")
    else:
        refuse("unknown", "no ballot with this serial was printed for this round")


def _verify_round_key_ballot(settings: Settings, token: dict, refuse) -> None:
    """A BR1 ballot (formats/ballots.py): RSA-PSS by the key announced for its round."""
    p = token["payload"]
    ballot = blind_ballots.BlindBallot(token["round_ref"], p["serial"], token["prefix"], token["sig"])
    with db_session() as db:
        rnd = db.get(Round, blind_ballots.round_id_of(ballot.round_ref))
        item = rnd.item if rnd is not None else None
        if item is None or rnd.blind_public_key is None or (item.sitting.body_id, item.sitting_id, item.id,
                                                            rnd.number) != (p["body"], p["session"], p["item"], p["round"]):
            refuse("unknown", f"the database has no hybrid round {ballot.round_ref} of item {p['item']}")
        try:
            blind_ballots.verify(blind_ballots.load_round_key(rnd.blind_public_key), ballot)
        except blind_rsa.InvalidSignature:
            refuse("forged", "the signature is not by the key announced for this round")
        counted = db.scalar(select(Cast.round_id).where(Cast.serial == p["serial"]))
        if counted is None and db.scalar(select(StagedCast.tag).where(StagedCast.round_id == rnd.id).limit(1)) \
                and cast_staging.stored_serial(db.connection(), body_signing_key(settings, p["body"]), p["serial"]):
            counted = rnd.id  # the vote is still open: its casts are sealed (cast_staging.py)
    click.echo(f"签名有效 signature valid: round key {rnd.blind_key_fingerprint[:32]}, body {p['body']} "
               f"session {p['session']} item {p['item']} round {p['round']}")
    click.echo("状态 state: already counted (已计入)" if counted == rnd.id
               else "状态 state: a paper ballot of this hybrid vote, not yet counted (有效，未计票)")


def _db_state(p: dict) -> str | None:
    """'counted' | 'handed_out' | 'spare' | 'electronic' | 'unknown' | 'no_round', or None without a DB."""
    settings = Settings.from_env()
    if settings.database_url.startswith("sqlite:///"):
        path = settings.database_url.split("sqlite:///", 1)[1]
        if path and path != ":memory:" and not Path(path).exists():
            return None
    try:
        engine = make_engine(settings.database_url)
    except SQLAlchemyError:
        return None
    try:
        with make_sessionmaker(engine)() as db:
            rnd = db.execute(select(Round).join(Item, Item.id == Round.item_id)
                             .join(Sitting, Sitting.id == Item.sitting_id)
                             .where(Round.item_id == p["item"], Round.number == p["round"],
                                    Item.sitting_id == p["session"], Sitting.body_id == p["body"])
                             ).scalar_one_or_none()
            if rnd is None:
                return "no_round"
            cast = db.scalar(select(Cast.round_id).where(Cast.serial == p["serial"]))
            if cast is not None:
                return "counted" if cast == rnd.id else "unknown"
            if db.scalar(select(StagedCast.tag).where(StagedCast.round_id == rnd.id).limit(1)) is not None \
                    and cast_staging.stored_serial(db.connection(), body_signing_key(settings, p["body"]),
                                                   p["serial"]) is not None:
                return "counted"  # a secret vote still open: its casts are sealed (cast_staging.py)
            pb = db.get(PaperBallot, p["serial"])
            if pb is None:
                item = db.get(Item, p["item"])
                return "unknown" if item.channel == Channel.PAPER else "electronic"
            if pb.round_id != rnd.id:
                return "unknown"
            return "handed_out" if pb.handed_out else "spare"
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


commands = [ballots]
