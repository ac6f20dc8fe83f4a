"""The audit trail: who changed what, and when."""

from datetime import datetime

from peewee import JOIN

from app.models import AuditLog, Staff, Store

OBJECT_TYPES = (
    "plan",
    "message_template",
    "tag",
    "tag_rule",
    "followup",
    "setting",
    "store",
    "staff",
    "channel",
)


def record(
    staff: Staff | int | None,
    store: Store | int | None,
    action: str,
    object_type: str,
    object_id,
    detail: dict | None,
    now: datetime,
) -> AuditLog:
    """Write one audit row (staff None = the system; a Staff or its id)."""
    store_id = store.id if isinstance(store, Store) else store
    staff_id = getattr(staff, "id", staff)
    return AuditLog.create(
        at=now,
        staff=staff_id or None,
        store=store_id,
        action=action[:64],
        object_type=(object_type or "")[:40],
        object_id=str(object_id if object_id is not None else "")[:64],
        detail=detail,
    )


def entries(
    store_ids: list[int],
    *,
    object_type: str = "",
    object_id: str = "",
    staff_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
) -> list[AuditLog]:
    """Recent audit rows of the given stores, newest first, narrowed by the filters."""
    query = AuditLog.select(AuditLog, Staff).join(
        Staff, join_type=JOIN.LEFT_OUTER, on=(AuditLog.staff == Staff.id)
    )
    query = query.where(AuditLog.store.in_(store_ids))
    if object_type:
        query = query.where(AuditLog.object_type == object_type)
    if object_id:
        query = query.where(AuditLog.object_id == object_id)
    if staff_id:
        query = query.where(AuditLog.staff == staff_id)
    if since:
        query = query.where(AuditLog.at >= since)
    if until:
        query = query.where(AuditLog.at < until)
    return list(query.order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit))
