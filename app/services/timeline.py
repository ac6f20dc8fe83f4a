"""One customer's history, newest first: visits, purchases, cards, follow-ups, messages, plans."""

import heapq
import re
from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import gettext as _
from peewee import JOIN

from app.models import (
    CardLedger,
    CardProduct,
    ContactLog,
    Customer,
    CustomerCard,
    Event,
    FollowUp,
    FollowUpReason,
    Message,
    Plan,
    Staff,
    Visit,
    WhyLog,
)

PAGE_SIZE = 30
EVENT_KINDS = (
    "purchase",
    "service_completed",
    "appointment_booked",
    "appointment_cancelled",
    "refund",
)


@dataclass
class Entry:
    """One line of the timeline; `data` holds what the template needs for that kind."""

    at: datetime
    kind: str
    ident: int
    data: dict = field(default_factory=dict)

    @property
    def sort_key(self) -> tuple:
        return (self.at, self.ident)


def _visits(customer: Customer, limit: int):
    query = (
        Visit.select(Visit, Staff)
        .join(Staff, JOIN.LEFT_OUTER)
        .where(Visit.customer == customer.id)
        .order_by(Visit.first_at.desc(), Visit.id.desc())
        .limit(limit)
    )
    for v in query:
        yield Entry(v.first_at, "visit", v.id, {"amount": v.amount, "staff": v.staff})


def _events(customer: Customer, limit: int):
    query = (
        Event.select()
        .where(Event.customer == customer.id, Event.type.in_(EVENT_KINDS))
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(limit)
    )
    for e in query:
        names = [i.get("name") or i.get("sku") for i in (e.items or []) if isinstance(i, dict)]
        yield Entry(
            e.occurred_at,
            f"event_{e.type}",
            e.id,
            {
                "amount": e.amount,
                "names": [n for n in names if n],
                "appointment_at": e.appointment_at,
            },
        )


def _card_movements(customer: Customer, limit: int):
    query = (
        CardLedger.select(CardLedger, CustomerCard, CardProduct)
        .join(CustomerCard)
        .join(CardProduct)
        .where(CustomerCard.customer == customer.id)
        .order_by(CardLedger.at.desc(), CardLedger.id.desc())
        .limit(limit)
    )
    for m in query:
        yield Entry(
            m.at,
            "card",
            m.id,
            {
                "movement": m.kind,
                "card": m.card.product.name,
                "delta_balance": m.delta_balance,
                "delta_uses": m.delta_uses,
                "balance_after": m.balance_after,
                "uses_after": m.uses_after,
            },
        )


def _followups(customer: Customer, limit: int):
    query = (
        FollowUp.select(FollowUp, Plan)
        .join(Plan, JOIN.LEFT_OUTER)
        .where(FollowUp.customer == customer.id)
        .order_by(FollowUp.created_at.desc(), FollowUp.id.desc())
        .limit(limit)
    )
    for f in query:
        yield Entry(
            f.created_at,
            "followup",
            f.id,
            {"plan": f.plan.name if f.plan_id else "", "status": f.status, "due_at": f.due_at},
        )


def _contacts(customer: Customer, limit: int):
    query = (
        ContactLog.select(ContactLog, Staff)
        .join(Staff, JOIN.LEFT_OUTER)
        .where(ContactLog.customer == customer.id)
        .order_by(ContactLog.at.desc(), ContactLog.id.desc())
        .limit(limit)
    )
    for c in query:
        yield Entry(
            c.at,
            "contact",
            c.id,
            {"outcome": c.outcome, "channel": c.channel, "note": c.note, "staff": c.staff},
        )


def _messages(customer: Customer, limit: int):
    query = (
        Message.select(Message, Plan)
        .join(Plan, JOIN.LEFT_OUTER)
        .where(Message.customer == customer.id)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    for m in query:
        yield Entry(
            m.sent_at or m.created_at,
            "message",
            m.id,
            {
                "channel": m.channel,
                "status": m.status,
                "body": m.body,
                "plan": m.plan.name if m.plan_id else "",
            },
        )


def _decisions(customer: Customer, limit: int):
    query = (
        WhyLog.select(WhyLog, Plan)
        .join(Plan, JOIN.LEFT_OUTER)
        .where(WhyLog.customer == customer.id)
        .order_by(WhyLog.at.desc(), WhyLog.id.desc())
        .limit(limit)
    )
    for w in query:
        decision, detail = why_text(w.kind, w.detail)
        yield Entry(
            w.at,
            "why",
            w.id,
            {"decision": decision, "detail": detail, "plan": w.plan.name if w.plan_id else ""},
        )


def _reasons(customer: Customer, limit: int):
    """Each plan decision that made or joined a follow-up: the why-log's "created" entries."""
    query = (
        FollowUpReason.with_plans()
        .join_from(FollowUpReason, FollowUp, on=(FollowUp.id == FollowUpReason.followup))
        .where(FollowUp.customer == customer.id)
        .order_by(FollowUpReason.created_at.desc(), FollowUpReason.id.desc())
        .limit(limit)
    )
    for r in query:
        yield Entry(
            r.created_at,
            "why",
            r.id,
            {"decision": "created", "detail": "", "plan": r.plan_name or ""},
        )


# What the engine stores in a why-log entry is English (it is the audit trail); staff read it
# in their own language: each known wording maps to its catalogue text.
_EVENT_REASON = re.compile(r"^(came back|used the card|booked an appointment|topped up) \(")
_BUDGET = re.compile(r"^over the contact budget \((\d+) (followup|message)s per (\d+) days\)$")
_NO_ADDRESS = re.compile(r"^no consent or no address for (.+)$")
_NOT_SET_UP = re.compile(r"^channel (\w+) is not set up for this store$")
_ELSEWHERE = re.compile(r"^reachable only on a channel this store has not set up \((\w+)\)$")
_STEP = re.compile(r"^step (\d+) withdrawn: came back or booked since step (\d+)$")


def _event_reason(reason: str) -> str:
    return {
        "came back": _("came back"),
        "used the card": _("used the card"),
        "booked an appointment": _("booked an appointment"),
        "topped up": _("topped up"),
    }[reason]


def why_text(kind: str, detail: str) -> tuple[str, str]:
    """(decision kind, detail in the viewer's language) of a why-log entry. A contact made
    needs no detail (the plan is named beside it); unknown wording is shown as stored."""
    detail = detail or ""
    if kind == "created":
        return ("message" if detail.startswith("message queued") else "created"), ""
    fixed = {
        "held out to measure the plan": _("held out to measure the plan"),
        "opted out": _("opted out"),
        "already qualified when the plan was switched on (no back-fill)": _(
            "already qualified when the plan was switched on (no back-fill)"
        ),
        "no message channel is set up for this store": _(
            "no message channel is set up for this store"
        ),
        "no channel in the store's fallback order is switched on": _(
            "no channel in the store’s fallback order is switched on"
        ),
    }
    if detail in fixed:
        return kind, fixed[detail]
    if match := _EVENT_REASON.match(detail):
        return kind, _event_reason(match.group(1))
    if match := _BUDGET.match(detail):
        n, what, days = int(match.group(1)), match.group(2), int(match.group(3))
        if what == "message":
            text = _("over the contact budget (%(n)s messages per %(days)s days)", n=n, days=days)
        else:
            text = _("over the contact budget (%(n)s follow-ups per %(days)s days)", n=n, days=days)
        return kind, text
    if match := _NO_ADDRESS.match(detail):
        return kind, _("no consent or no address for %(channels)s", channels=match.group(1))
    if match := _NOT_SET_UP.match(detail):
        return kind, _("channel %(channel)s is not set up for this store", channel=match.group(1))
    if match := _ELSEWHERE.match(detail):
        return kind, _(
            "reachable only on a channel this store has not set up (%(channel)s)",
            channel=match.group(1),
        )
    if match := _STEP.match(detail):
        return kind, _(
            "step %(n)s withdrawn: came back or booked since step %(m)s",
            n=match.group(1),
            m=match.group(2),
        )
    return kind, detail


SOURCES = (
    _visits,
    _events,
    _card_movements,
    _followups,
    _contacts,
    _messages,
    _decisions,
    _reasons,
)


def timeline(customer: Customer, page: int = 1, size: int = PAGE_SIZE) -> tuple[list[Entry], bool]:
    """One page of the customer's history, newest first, and whether there is more."""
    page = max(1, page)
    need = page * size + 1
    streams = [source(customer, need) for source in SOURCES]
    merged = heapq.merge(*streams, key=lambda e: e.sort_key, reverse=True)
    entries = []
    for entry in merged:
        entries.append(entry)
        if len(entries) >= need:
            break
    start = (page - 1) * size
    return entries[start : start + size], len(entries) > start + size
