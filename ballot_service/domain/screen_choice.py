"""What the presiding screen shows between votes, as the secretariat chooses it."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.domain import audit
from ballot_service.domain.sittings import get_item, has_result, open_item_locked, require_open
from ballot_service.errors import Conflict, InvalidInput
from ballot_service.models import Record, Sitting
from ballot_service.numbers import is_int
from ballot_service.vocab import AuditKind, ScreenChoice, values

SCREEN_CHOICES = values(ScreenChoice)


def set_screen(db: Session, sitting: Sitting, show: str, item_id: int | None = None) -> dict:
    """The secretariat chooses what the presiding screen shows between votes (display._mode):
    'auto' follows the votes again; 'title' shows only the body and session (会标, e.g. for a
    break); 'checkin' the attendance; 'result' the published result of an item. The next vote
    to open, close, be tallied or be published takes the screen back. Refused while a vote is open: the
    hall then sees that vote's progress, whatever was chosen."""
    if show not in SCREEN_CHOICES:
        raise InvalidInput(f"show must be one of {', '.join(SCREEN_CHOICES)}", where="show",
                           zh="大屏显示内容须为 auto（跟随表决）、title（会标）、checkin（签到情况）或 result（某项结果）")
    data: dict = {"session_id": sitting.id, "show": show}  # session_id: the verifier's 闭会 check
    if show == ScreenChoice.RESULT:
        if not is_int(item_id):
            raise InvalidInput("item_id (a number) is required to show a result", where="item_id",
                               zh="显示表决结果须指定表决事项")
        item = get_item(db, item_id)
        if item.sitting_id != sitting.id:
            raise InvalidInput(f"item {item_id} is not in this session", where="item_id",
                               zh=f"表决事项 {item_id} 不属于本次会议")
        published = db.scalar(select(Record.published).where(Record.item_id == item.id).limit(1))
        if not has_result(item) or published is not True:
            raise Conflict(f"the result of {item.title} is not published yet: publish it first", where="item_id",
                           zh=f"《{item.title}》的表决结果尚未公布，不能在大屏显示：请先签发并公布")
        data["item_id"] = item.id
    elif item_id is not None:
        raise InvalidInput("item_id goes only with show=result", where="item_id",
                           zh="只有显示表决结果时才指定表决事项")
    voting_now = open_item_locked(db, sitting)  # the strong lock first: FOR SHARE, then a stronger one, deadlocks a double click
    require_open(db, sitting, "切换大屏", "changing the presiding screen")
    if voting_now is not None:
        raise Conflict(f"a vote ({voting_now.title}) is open: the screen shows its progress until it closes",
                       where="show", zh=f"《{voting_now.title}》进行中：结束表决前大屏显示表决进度")
    audit.append(db, AuditKind.SCREEN_SET, data, sitting_id=sitting.id)
    return data
