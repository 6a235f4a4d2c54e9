"""Printing a ballot set's sheets (选举票组合印, formats/set_sheet.py): which elections a sheet
holds now, how they go on pages, signing one ballot per election and sheet, and recording each
election's ballots as printed exactly as if printed alone (paper_ballots.record_paper_ballots).

Each round's ballots are recorded sorted by serial (random), not in sheet order, so nothing in
the database pairs one round's ballot with another's of the same sheet. Only flushes."""
from __future__ import annotations

from sqlalchemy.orm import Session

from ballot_service.crypto.keys import SigningKey
from ballot_service.domain import ballot_sets, voting
from ballot_service.domain.paper_ballots import record_paper_ballots, sign_paper_ballots
from ballot_service.errors import Conflict, InvalidInput
from ballot_service.formats import set_sheet
from ballot_service.formats.ballots import token_to_text
from ballot_service.models import Item, Round
from ballot_service.render.paper import BallotLayout
from ballot_service.render.set_paper import SetSheetLayout
from ballot_service.vocab import RoundStatus


def sheet_rounds(db: Session, item: Item) -> list[tuple[Item, Round]]:
    """The elections of `item`'s set that a sheet printed now holds, in the set's order: each
    member whose current round is not yet closed (after the set's tally, a re-vote's set is
    those still to decide). Refused if `item` itself is not among them."""
    found = [(m, voting.current_round(m)) for m in ballot_sets.members(db, item)]
    found = [(m, r) for m, r in found if r.status in (RoundStatus.PENDING, RoundStatus.OPEN)]
    if item not in [m for m, _ in found]:
        raise Conflict(f"{item.title}: its vote is over, no sheet is printed for it now", where="item",
                       zh=f"《{item.title}》本轮表决已结束，不再印制选票")
    return found


def plan(pairs: list[tuple[Item, Round]], key_fingerprint: str | None = None) -> SetSheetLayout:
    """The sheet's layout: its sections on pages (set_sheet.paginate), refused if one election
    does not fit on a page alone."""
    sections = [BallotLayout.from_item(i, r, key_fingerprint=key_fingerprint) for i, r in pairs]
    try:
        pages = set_sheet.paginate([len(s.candidates) + s.write_in_lines for s in sections])
    except ValueError:
        raise InvalidInput("an election of this ballot set has too many candidates for one page of a set sheet: "
                           "print it as a ballot set of its own", where="ballot_set",
                           zh="选举票组中有一项选举的候选人过多，合印选票一页排不下：请将其单独列为一个选举票组") from None
    item = pairs[0][0]
    return SetSheetLayout(body_name=item.sitting.body.name, sitting_name=item.sitting.name, set_name=item.ballot_set,
                          pages=tuple(tuple(sections[i] for i in page) for page in pages),
                          key_fingerprint=key_fingerprint)


def sign_sheets(key: SigningKey, pairs: list[tuple[Item, Round]], layout: SetSheetLayout,
                count: int) -> tuple[list[list[dict]], list[tuple[str, str]]]:
    """`count` sheets: each election's tokens (for record_sheets), and the pages to print,
    sheet after sheet, as (QR text, page index) pairs. Touches no database."""
    tokens = [sign_paper_ballots(key, i, r, count) for i, r in pairs]
    pages, start = [], 0
    for page in layout.pages:
        pages.append(range(start, start + len(page)))
        start += len(page)
    printed = [(set_sheet.set_text([tokens[j][n] for j in page]), str(k))
               for n in range(count) for k, page in enumerate(pages)]
    return tokens, printed


def record_sheets(db: Session, key: SigningKey, pairs: list[tuple[Item, Round]], tokens: list[list[dict]]) -> None:
    """Record each election's ballots as printed, in serial order (module docstring)."""
    for (item, rnd), own in zip(pairs, tokens):
        record_paper_ballots(db, key, item, rnd, sorted(own, key=lambda t: t["payload"]["serial"]))


def create_sheets(db: Session, key: SigningKey, item: Item, count: int) -> dict:
    """Sign and record `count` sheets of `item`'s ballot set (the admin API's paper-ballots for a
    set): {"ballots": the sheets' page QR texts, "sections": {item id: each sheet's own ballot
    text of that election, in sheet order}, "pages": pages a sheet}."""
    pairs = sheet_rounds(db, item)
    layout = plan(pairs)
    tokens, printed = sign_sheets(key, pairs, layout, count)
    record_sheets(db, key, pairs, tokens)
    return {"ballots": [t for t, _ in printed], "pages": len(layout.pages),
            "sections": {str(i.id): [token_to_text(t) for t in own] for (i, _), own in zip(pairs, tokens)}}
