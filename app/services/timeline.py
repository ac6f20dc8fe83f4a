"""One customer's history, newest first: visits, purchases, cards, follow-ups, messages, plans."""

import heapq
from dataclasses import dataclass, field
from datetime import datetime

from peewee import JOIN

from app.models import (
    CardLedger,
    CardProduct,
    ContactLog,
    Customer,
    CustomerCard,
    Event,
    FollowUp,
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
        yield Entry(
            w.at,
            "why",
            w.id,
            {"decision": w.kind, "detail": w.detail, "plan": w.plan.name if w.plan_id else ""},
        )


SOURCES = (_visits, _events, _card_movements, _followups, _contacts, _messages, _decisions)


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
