"""The audit bundle of one body, or of one sitting of it: what an operator of that body may
export (console zip, `audit export --body`), to be verified with that body's key alone.

A thin wrapper over export.export_bundle, which writes everything in the database. While the
audit chain is one chain for the whole service, a bundle cannot leave out another body's
events and still verify, so the export is refused (409) when the database holds another
body; once the chain is kept per body (export_bundle choosing one body's chain), this is
where that choice is passed on."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ballot_service.bundle.export import export_bundle
from ballot_service.errors import Conflict, NotFound
from ballot_service.models import Body, Sitting


def export_body_bundle(db: Session, settings, out_dir: Path, body_id: int, sitting_id: int | None = None) -> Path:
    """Write the bundle of body `body_id` (the sitting `sitting_id` must be one of its own) to
    `out_dir`; refused while it would hold another body's events (module docstring)."""
    if db.get(Body, body_id) is None:
        raise NotFound(f"no body with id {body_id}", where="body_id", zh=f"找不到编号为 {body_id} 的机构")
    if sitting_id is not None and db.scalar(select(Sitting.body_id).where(Sitting.id == sitting_id)) != body_id:
        raise NotFound(f"body {body_id} has no sitting {sitting_id}", where="sitting_id",
                       zh=f"机构 {body_id} 没有编号为 {sitting_id} 的会议")
    others = db.scalar(select(func.count()).select_from(Body).where(Body.id != body_id))
    if others:
        raise Conflict("this service also holds other bodies, and their audit events share one chain with "
                       "this body's: a bundle of this body alone cannot be made yet; ask the service's "
                       "administrator for the whole bundle", where="body_id",
                       zh="本服务还承载其他机构，其审计事件与本机构共用一条审计链，暂不能单独导出本机构的审计包；"
                          "请向系统管理员索取完整审计包")
    return export_bundle(db, settings, out_dir)
