"""Recording what customers did: idempotent by external id, with visits, cards and aggregates."""

import logging
from datetime import datetime
from decimal import Decimal

import peewee as pw

from app.db import db, is_postgres
from app.models import CardProduct, Customer, CustomerCard, Event, EventItem, Staff, Store, Visit
from app.models.events import EVENT_TYPES, VISIT_TYPES
from app.services import cards as card_service
from app.services import customers as customer_service
from app.services.validation import (
    Errors,
    ValidationError,
    blank,
    parse_datetime,
    parse_decimal,
    parse_int,
    text,
)

log = logging.getLogger(__name__)

EVENT_FIELDS = {
    "external_id",
    "type",
    "customer",
    "occurred_at",
    "amount",
    "items",
    "card",
    "staff",
    "appointment_at",
}
MAX_ITEMS = 200


def find_event(store: Store, external_id: str) -> Event | None:
    """The event of this store with that external id, or None."""
    return Event.get_or_none((Event.store == store.id) & (Event.external_id == external_id))


def _staff_of_store(store: Store, email) -> Staff | None:
    if not isinstance(email, str):
        return None
    staff_id = customer_service.StoreLookups(store).staff_id(email)
    return Staff.get_by_id(staff_id) if staff_id else None


def clean_event(store: Store, data: dict) -> dict:
    """Validate an event body; answer the cleaned values or raise listing every bad field."""
    errors = Errors()
    for key in data:
        if key not in EVENT_FIELDS and key not in ("id", "source", "created_at"):
            errors.add(str(key)[:60], "unknown field")
    etype = data.get("type")
    if etype not in EVENT_TYPES:
        errors.add(
            "type", f"'{str(etype)[:40]}' is not an event type (use {', '.join(EVENT_TYPES)})"
        )
    customer = errors.check(
        "customer", customer_service.resolve_customer, store, data.get("customer")
    )
    occurred_at = None
    if blank(data.get("occurred_at")):
        errors.add("occurred_at", "occurred_at is required")
    else:
        occurred_at = errors.check(
            "occurred_at", parse_datetime, data["occurred_at"], store.timezone
        )
    amount = None
    if not blank(data.get("amount")):
        amount = errors.check(
            "amount", parse_decimal, data["amount"], allow_negative=etype == "refund"
        )
        if amount is not None and etype == "refund" and amount > 0:
            amount = -amount
    items = _clean_items(data.get("items"), errors)
    staff = None
    if not blank(data.get("staff")):
        staff = _staff_of_store(store, data["staff"])
        if staff is None:
            errors.add(
                "staff", f"no staff member with e-mail '{str(data['staff'])[:80]}' in this store"
            )
    appointment_at = None
    if not blank(data.get("appointment_at")):
        appointment_at = errors.check(
            "appointment_at", parse_datetime, data["appointment_at"], store.timezone
        )
    card, card_uses, card_amount = _clean_card(store, data, etype, customer, amount, errors)
    errors.raise_if_any()
    return {
        "type": etype,
        "customer": customer,
        "occurred_at": occurred_at,
        "amount": amount,
        "items": items,
        "staff": staff,
        "appointment_at": appointment_at,
        "card": card,
        "card_uses": card_uses,
        "card_amount": card_amount,
    }


def _clean_items(raw, errors: Errors) -> list[dict] | None:
    if blank(raw):
        return None
    if not isinstance(raw, list):
        errors.add("items", "items must be a list of {sku, name, quantity, price}")
        return None
    if len(raw) > MAX_ITEMS:
        errors.add("items", f"too many items ({len(raw)}, at most {MAX_ITEMS})")
        return None
    items = []
    for index, item in enumerate(raw):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            errors.add(where, "each item must be an object with a sku")
            continue
        if blank(item.get("sku")):
            errors.add(f"{where}.sku", "sku is required")
            continue
        sku = errors.check(f"{where}.sku", text, item["sku"], 64, "sku")
        name = (
            ""
            if blank(item.get("name"))
            else errors.check(f"{where}.name", text, item["name"], 200, "name")
        )
        quantity = 1
        if not blank(item.get("quantity")):
            quantity = errors.check(
                f"{where}.quantity", parse_int, item["quantity"], minimum=1, label="quantity"
            )
        price = None
        if not blank(item.get("price")):
            price = errors.check(f"{where}.price", parse_decimal, item["price"], label="price")
        items.append({"sku": sku, "name": name or "", "quantity": quantity, "price": price})
    return items


def _clean_card(store, data, etype, customer, amount, errors: Errors):
    raw = data.get("card")
    if blank(raw):
        if etype == "card_used":
            errors.add("card", 'a card_used event needs the card ({"id"} or {"external_id"})')
        if etype == "top_up":
            errors.add("card", 'a top_up event needs the card ({"id"} or {"external_id"})')
        return None, None, None
    if not isinstance(raw, dict):
        errors.add("card", "card must be an object with id or external_id")
        return None, None, None
    card = card_service.find_card(store, raw)
    if card is None:
        if any(raw.get(k) not in (None, "") for k in ("id", "external_id")):
            key = "id" if raw.get("id") not in (None, "") else "external_id"
            errors.add(
                "card", f"no card with {key.replace('_', ' ')} '{str(raw[key])[:60]}' in this store"
            )
        else:
            errors.add("card", 'give the card as {"id"} or {"external_id"}')
        return None, None, None
    if customer is not None and card.customer_id != customer.id:
        errors.add("card", "this card belongs to another customer")
    uses = card_amount = None
    if not blank(raw.get("uses")):
        uses = errors.check("card.uses", parse_int, raw["uses"], minimum=1, label="uses")
    if not blank(raw.get("amount")):
        card_amount = errors.check("card.amount", parse_decimal, raw["amount"], label="amount")
        if card_amount is not None and card_amount <= 0:
            errors.add("card.amount", "the amount must be more than zero")
    kind = CardProduct.get_by_id(card.product_id).kind
    if etype == "card_used":
        if kind == "count" and uses is None:
            uses = 1
        if kind == "stored_value" and card_amount is None:
            if amount is not None and amount > 0:
                card_amount = amount
            else:
                errors.add("card.amount", "a stored-value card needs the amount to deduct")
    if etype == "top_up":
        if kind != "stored_value":
            errors.add("card", "only a stored-value card can be topped up")
        elif card_amount is None:
            if amount is not None and amount > 0:
                card_amount = amount
            else:
                errors.add("card.amount", "a top_up event needs the amount")
    return card, uses, card_amount


def record_event(
    store: Store,
    data: dict,
    now: datetime,
    source: str = "api",
    staff: Staff | None = None,
    triggers_plans: bool = True,
) -> tuple[Event, bool]:
    """Record an event once per external id, with its visit, card use and customer aggregates."""
    if not isinstance(data, dict):
        raise ValidationError("the event must be a JSON object", "")
    if blank(data.get("external_id")):
        errors = Errors()
        errors.add("external_id", "external_id is required")
        try:
            clean_event(store, data)
        except ValidationError as exc:
            errors.extend(exc.errors)
        errors.raise_if_any()
    try:
        external_id = text(data["external_id"], 100, "external_id")
    except ValueError as exc:
        raise ValidationError(str(exc), "external_id") from None
    existing = find_event(store, external_id)
    if existing is not None:
        return existing, False
    clean = clean_event(store, data)
    serving = clean["staff"] or staff
    with db.atomic():
        customer = clean["customer"]
        if is_postgres():
            # One writer per customer at a time, so the recomputed aggregates see every event.
            Customer.select(Customer.id).where(Customer.id == customer.id).for_update().execute()
        try:
            with db.atomic():
                event = Event.create(
                    store=store.id,
                    customer=customer.id,
                    external_id=external_id,
                    type=clean["type"],
                    occurred_at=clean["occurred_at"],
                    amount=clean["amount"],
                    items=[_item_json(i) for i in clean["items"]] if clean["items"] else None,
                    card=clean["card"].id if clean["card"] else None,
                    card_uses=clean["card_uses"],
                    card_amount=clean["card_amount"],
                    appointment_at=clean["appointment_at"],
                    staff=serving.id if serving else None,
                    source=source[:16],
                    triggers_plans=triggers_plans,
                    created_at=now,
                )
        except pw.IntegrityError:
            return find_event(store, external_id), False
        if clean["items"]:
            EventItem.insert_many(
                [
                    {
                        "event": event.id,
                        "customer": customer.id,
                        "sku": i["sku"],
                        "name": i["name"],
                        "quantity": i["quantity"],
                        "price": i["price"],
                    }
                    for i in clean["items"]
                ]
            ).execute()
        if clean["card"] is not None and event.type == "card_used":
            card_service.use_card(
                clean["card"],
                now,
                uses=clean["card_uses"],
                amount=clean["card_amount"],
                event=event,
                staff=serving,
            )
        elif clean["card"] is not None and event.type == "top_up":
            card_service.top_up(
                clean["card"], clean["card_amount"], now, event=event, staff=serving
            )
        if event.type in VISIT_TYPES:
            _record_visit(store, customer, event, serving)
        refresh_aggregates(customer.id)
    from app.services import hooks

    hooks.after_any_event(event)
    if triggers_plans:
        hooks.after_event(event, now)
    return event, True


def _item_json(item: dict) -> dict:
    return {
        "sku": item["sku"],
        "name": item["name"],
        "quantity": item["quantity"],
        "price": None if item["price"] is None else str(item["price"]),
    }


def _record_visit(store: Store, customer: Customer, event: Event, serving: Staff | None) -> None:
    day = card_service.local_day(store, event.occurred_at)
    amount = event.amount or Decimal("0")
    visit = Visit.get_or_none((Visit.customer == customer.id) & (Visit.day == day))
    if visit is None:
        try:
            with db.atomic():
                Visit.create(
                    customer=customer.id,
                    store=store.id,
                    day=day,
                    first_at=event.occurred_at,
                    amount=amount,
                    staff=serving.id if serving else None,
                )
            return
        except pw.IntegrityError:
            visit = Visit.get((Visit.customer == customer.id) & (Visit.day == day))
    changes = {Visit.amount: Visit.amount + amount}
    if event.occurred_at < visit.first_at:
        changes[Visit.first_at] = event.occurred_at
    if serving is not None:
        changes[Visit.staff] = serving.id
    Visit.update(changes).where(Visit.id == visit.id).execute()


def refresh_aggregates(customer_id: int) -> None:
    """Recompute a customer's cached visit dates, visit count and total spend from the facts."""
    visits = Event.select().where((Event.customer == customer_id) & Event.type.in_(VISIT_TYPES))
    Customer.update(
        first_visit_at=visits.select(pw.fn.MIN(Event.occurred_at)),
        last_visit_at=visits.select(pw.fn.MAX(Event.occurred_at)),
        visit_count=Visit.select(pw.fn.COUNT(Visit.id)).where(Visit.customer == customer_id),
        total_spend=Event.select(pw.fn.COALESCE(pw.fn.SUM(Event.amount), 0)).where(
            Event.customer == customer_id
        ),
    ).where(Customer.id == customer_id).execute()


def event_dict(event: Event) -> dict:
    """The JSON form of an event."""
    customer = Customer.get_by_id(event.customer_id)
    staff = Staff.get_or_none(Staff.id == event.staff_id) if event.staff_id else None
    card = CustomerCard.get_or_none(CustomerCard.id == event.card_id) if event.card_id else None
    return {
        "id": event.id,
        "external_id": event.external_id,
        "type": event.type,
        "customer": {
            "id": customer.id,
            "external_id": customer.external_id,
            "phone": customer.phone,
        },
        "occurred_at": event.occurred_at.isoformat(),
        "amount": None
        if event.amount is None
        else str(Decimal(event.amount).quantize(Decimal("0.01"))),
        "items": event.items or [],
        "card": (
            {
                "id": card.id,
                "external_id": card.external_id,
                "uses": event.card_uses,
                "amount": None if event.card_amount is None else str(event.card_amount),
            }
            if card
            else None
        ),
        "appointment_at": event.appointment_at.isoformat() if event.appointment_at else None,
        "staff": staff.email if staff else None,
        "source": event.source,
        "created_at": event.created_at.isoformat() if event.created_at else None,
    }
