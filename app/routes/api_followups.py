"""API v1: follow-ups with their reasons, contact logs, and the message outbox."""

from flask import abort, g, jsonify, request

from app import clock
from app.models import AuditLog, FollowUp, FollowUpReason, Message, Staff, StaffStore
from app.models.followups import FOLLOWUP_STATUSES, OUTCOMES
from app.models.messages import MESSAGE_STATUSES
from app.routes.api import (
    json_body,
    operation,
    paginate,
    query_choice,
    query_datetime,
    query_int,
)
from app.services import followups
from app.services import openapi as spec
from app.services.validation import Errors, ValidationError, blank, parse_datetime


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def followup_items(rows: list[FollowUp]) -> list[dict]:
    """The JSON form of follow-ups, with assignees and reasons fetched in two queries."""
    ids = [f.id for f in rows]
    staff_ids = {f.assignee_id for f in rows if f.assignee_id}
    emails = (
        {s.id: s.email for s in Staff.select(Staff.id, Staff.email).where(Staff.id.in_(staff_ids))}
        if staff_ids
        else {}
    )
    reasons: dict[int, list[dict]] = {i: [] for i in ids}
    if ids:
        for r in (
            FollowUpReason.with_plans()
            .where(FollowUpReason.followup.in_(ids))
            .order_by(FollowUpReason.id)
        ):
            reasons[r.followup_id].append(
                {"plan": r.plan_id, "occurrence": r.occurrence_id, "text": r.text}
            )
    return [
        {
            "id": f.id,
            "plan": f.plan_id,
            "customer": f.customer_id,
            "assignee": emails.get(f.assignee_id),
            "due_at": f.due_at.isoformat(),
            "status": f.status,
            "script": f.script,
            "reasons": reasons[f.id]
            or (
                [{"plan": f.plan_id, "occurrence": f.occurrence_id, "text": ""}]
                if f.plan_id
                else []
            ),
            "outcome": f.outcome,
            "snoozed_until": _iso(f.snoozed_until),
            "completed_at": _iso(f.completed_at),
            "created_at": _iso(f.created_at),
        }
        for f in rows
    ]


def _followup_or_404(followup_id: int) -> FollowUp:
    followup = FollowUp.get_or_none((FollowUp.id == followup_id) & (FollowUp.store == g.store.id))
    if followup is None:
        abort(404)
    return followup


def _store_staff(email: str) -> Staff | None:
    """An active staff member of the token's store (owners included) by email."""
    staff = Staff.get_or_none((Staff.email == email.strip().lower()) & Staff.active)
    if staff is None:
        staff = Staff.get_or_none((Staff.email == email.strip()) & Staff.active)
    if staff is None:
        return None
    if staff.role == "owner":
        return staff
    member = StaffStore.get_or_none(
        (StaffStore.staff == staff.id) & (StaffStore.store == g.store.id)
    )
    return staff if member else None


@operation(
    "/followups",
    "GET",
    summary="Follow-ups (every status unless filtered)",
    response=spec.page_of("FollowUp"),
    query=(
        ("status", {"type": "string", "enum": list(FOLLOWUP_STATUSES)}, "only this status"),
        ("assignee", {"type": "string"}, "the assignee's email"),
        ("customer", {"type": "integer", "minimum": 1}, "customer id"),
        ("plan", {"type": "integer", "minimum": 1}, "plan id"),
        ("due_before", {"type": "string", "format": "date-time"}, "due strictly before"),
        *spec.PAGE_PARAMS,
    ),
    tag="followups",
)
def list_followups():
    """A page of the store's follow-ups matching the filters."""
    query = FollowUp.select().where(FollowUp.store == g.store.id)
    status = query_choice("status", FOLLOWUP_STATUSES)
    if status:
        query = query.where(FollowUp.status == status)
    assignee = request.args.get("assignee")
    if assignee:
        query = query.where(
            FollowUp.assignee.in_(
                Staff.select(Staff.id).where(Staff.email == assignee.strip().lower())
            )
        )
    customer = query_int("customer")
    if customer:
        query = query.where(FollowUp.customer == customer)
    plan = query_int("plan")
    if plan:
        query = query.where(FollowUp.plan == plan)
    due_before = query_datetime("due_before")
    if due_before:
        query = query.where(FollowUp.due_at < due_before)
    return jsonify(paginate(query, FollowUp.id, followup_items))


@operation(
    "/followups/<int:followup_id>/logs",
    "POST",
    summary="Log what happened on a follow-up (closes, reschedules or retries it)",
    body=spec.ref("FollowUpLogInput"),
    response=spec.ref("ContactLog"),
    statuses=(201,),
    tag="followups",
)
def log_followup(followup_id: int):
    """Record an outcome on a follow-up on behalf of its assignee (or the staff named)."""
    followup = _followup_or_404(followup_id)
    data = json_body()
    errors = Errors()
    for key in data:
        if key not in ("outcome", "channel", "note", "next_at", "appointment_at", "staff"):
            errors.add(str(key)[:60], "unknown field")
    outcome = data.get("outcome")
    if blank(outcome):
        errors.add("outcome", "outcome is required")
    elif outcome not in OUTCOMES:
        errors.add("outcome", f"must be one of: {', '.join(OUTCOMES)}")
    channel = data.get("channel")
    if channel is not None and (not isinstance(channel, str) or len(channel) > 16):
        errors.add("channel", "must be a short text such as phone, whatsapp or line")
    note = data.get("note") or ""
    if not isinstance(note, str):
        errors.add("note", "must be text")
    times = {}
    for name in ("next_at", "appointment_at"):
        if not blank(data.get(name)):
            times[name] = errors.check(name, parse_datetime, data[name], g.store.timezone)
    staff = None
    if not blank(data.get("staff")):
        if not isinstance(data["staff"], str):
            errors.add("staff", "must be a staff email")
        else:
            staff = _store_staff(data["staff"])
            if staff is None:
                errors.add("staff", "no staff member with that email works in this store")
    elif followup.assignee_id:
        staff = Staff.get_or_none(Staff.id == followup.assignee_id)
    if staff is None and not errors:
        errors.add("staff", "the follow-up has no assignee: name the staff member who called")
    errors.raise_if_any()
    now = clock.now()
    try:
        entry = followups.log_outcome(
            followup,
            staff,
            outcome,
            now,
            channel=channel,
            note=note,
            next_at=times.get("next_at"),
            appointment_at=times.get("appointment_at"),
        )
    except followups.FollowUpError as exc:
        raise ValidationError(exc.message, exc.field) from None
    AuditLog.create(
        at=now,
        staff=staff.id,
        store=g.store.id,
        action="api.followup_logged",
        object_type="contact_log",
        object_id=str(entry.id),
        detail={"source": "api", "token": g.api_token.id, "followup": followup.id},
    )
    fresh = FollowUp.get_by_id(followup.id)
    body = {
        "id": entry.id,
        "followup": followup_items([fresh])[0],
        "outcome": entry.outcome,
        "channel": entry.channel,
        "note": entry.note,
        "next_at": _iso(entry.next_at),
        "at": entry.at.isoformat(),
        "staff": staff.email,
    }
    return jsonify(body), 201


def message_items(rows: list[Message]) -> list[dict]:
    """The JSON form of outbox messages."""
    return [
        {
            "id": m.id,
            "plan": m.plan_id,
            "occurrence": m.occurrence_id,
            "customer": m.customer_id,
            "channel": m.channel,
            "status": m.status,
            "body": m.body,
            "created_at": m.created_at.isoformat(),
            "sent_at": _iso(m.sent_at),
            "delivered_at": _iso(m.delivered_at),
            "error": m.error,
        }
        for m in rows
    ]


@operation(
    "/messages",
    "GET",
    summary="Automatic messages (every status unless filtered)",
    response=spec.page_of("Message"),
    query=(
        ("status", {"type": "string", "enum": list(MESSAGE_STATUSES)}, "only this status"),
        ("plan", {"type": "integer", "minimum": 1}, "plan id"),
        ("customer", {"type": "integer", "minimum": 1}, "customer id"),
        ("channel", {"type": "string", "enum": ["whatsapp", "line", "sms", "email"]}, "channel"),
        *spec.PAGE_PARAMS,
    ),
    tag="messages",
)
def list_messages():
    """A page of the store's outbox messages matching the filters."""
    query = Message.select().where(Message.store == g.store.id)
    status = query_choice("status", MESSAGE_STATUSES)
    if status:
        query = query.where(Message.status == status)
    plan = query_int("plan")
    if plan:
        query = query.where(Message.plan == plan)
    customer = query_int("customer")
    if customer:
        query = query.where(Message.customer == customer)
    channel = query_choice("channel", ("whatsapp", "line", "sms", "email"))
    if channel:
        query = query.where(Message.channel == channel)
    return jsonify(paginate(query, Message.id, message_items))
