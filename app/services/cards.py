"""Card products and customer cards: issue, use, top up — every change in the ledger."""

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import peewee as pw

from app.db import db
from app.models import CardLedger, CardProduct, CustomerCard, Staff, Store
from app.models.cards import CARD_KINDS
from app.services import customers as customer_service
from app.services.validation import (
    Errors,
    ValidationError,
    blank,
    parse_date,
    parse_datetime,
    parse_decimal,
    parse_int,
    text,
)

log = logging.getLogger(__name__)

PRODUCT_FIELDS = {"sku", "name", "kind", "price", "uses", "value", "valid_days", "active", "id"}
CARD_FIELDS = {
    "external_id",
    "customer",
    "product",
    "balance",
    "remaining_uses",
    "expires_on",
    "issued_at",
}


def local_day(store: Store, instant: datetime):
    """The calendar day of an instant in the store's timezone."""
    return instant.astimezone(ZoneInfo(store.timezone)).date()


def upsert_product(store: Store, data: dict, now: datetime) -> tuple[CardProduct, bool]:
    """Create or update a card product matched by sku; answer it and created?."""
    if not isinstance(data, dict):
        raise ValidationError("the card product must be a JSON object", "")
    errors = Errors()
    for key in data:
        if key not in PRODUCT_FIELDS:
            errors.add(str(key)[:60], "unknown field")
    sku = None if blank(data.get("sku")) else errors.check("sku", text, data["sku"], 64, "sku")
    if sku is None and not errors:
        errors.add("sku", "sku is required")
    existing = (
        CardProduct.get_or_none((CardProduct.store == store.id) & (CardProduct.sku == sku))
        if sku
        else None
    )
    values: dict = {}
    if "name" in data or existing is None:
        if blank(data.get("name")):
            errors.add("name", "name is required")
        else:
            values["name"] = errors.check("name", text, data["name"], 200, "name")
    if "kind" in data or existing is None:
        kind = data.get("kind")
        if kind not in CARD_KINDS:
            errors.add(
                "kind", f"'{str(kind)[:40]}' is not a card kind (use {', '.join(CARD_KINDS)})"
            )
        else:
            values["kind"] = kind
    for key in ("price", "value"):
        if key in data:
            values[key] = (
                None if blank(data[key]) else errors.check(key, parse_decimal, data[key], label=key)
            )
    for key in ("uses", "valid_days"):
        if key in data:
            values[key] = (
                None
                if blank(data[key])
                else errors.check(key, parse_int, data[key], minimum=1, label=key)
            )
    if "active" in data:
        values["active"] = bool(data["active"])
    kind = values.get("kind") or (existing.kind if existing else None)
    uses = values["uses"] if "uses" in values else (existing.uses if existing else None)
    if kind == "count" and not uses and not any(e["field"] == "uses" for e in errors.items):
        errors.add("uses", "a count card needs the number of uses")
    errors.raise_if_any()
    with db.atomic():
        if existing is None:
            try:
                with db.atomic():
                    product = CardProduct.create(store=store.id, sku=sku, created_at=now, **values)
                return product, True
            except pw.IntegrityError:
                existing = CardProduct.get(
                    (CardProduct.store == store.id) & (CardProduct.sku == sku)
                )
        for key, value in values.items():
            setattr(existing, key, value)
        if values:
            existing.save()
    return existing, False


def product_dict(product: CardProduct) -> dict:
    """The JSON form of a card product."""
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "kind": product.kind,
        "price": _money(product.price),
        "uses": product.uses,
        "value": _money(product.value),
        "valid_days": product.valid_days,
        "active": bool(product.active),
    }


def find_card(store: Store, ref) -> CustomerCard | None:
    """The card of this store named by {"id"} or {"external_id"}, or None."""
    if not isinstance(ref, dict):
        return None
    query = CustomerCard.select().where(CustomerCard.store == store.id)
    if ref.get("id") not in (None, ""):
        try:
            card_id = int(str(ref["id"]).strip())
        except ValueError:
            return None
        if not 0 < card_id <= 2_147_483_647:  # beyond any id column: no such card
            return None
        return query.where(CustomerCard.id == card_id).first()
    if ref.get("external_id") not in (None, ""):
        return query.where(CustomerCard.external_id == str(ref["external_id"]).strip()).first()
    return None


def issue_card(store: Store, data: dict, now: datetime, staff: Staff | None = None) -> CustomerCard:
    """Issue a card to a customer (idempotent on external_id), with an "issue" ledger row."""
    if not isinstance(data, dict):
        raise ValidationError("the card must be a JSON object", "")
    errors = Errors()
    for key in data:
        if key not in CARD_FIELDS and key not in ("id", "status", "kind", "last_used_at"):
            errors.add(str(key)[:60], "unknown field")
    external_id = None
    if not blank(data.get("external_id")):
        external_id = errors.check("external_id", text, data["external_id"], 100, "external_id")
        if external_id:
            existing = CustomerCard.get_or_none(
                (CustomerCard.store == store.id) & (CustomerCard.external_id == external_id)
            )
            if existing is not None:
                return existing
    customer = errors.check(
        "customer", customer_service.resolve_customer, store, data.get("customer")
    )
    product = None
    if blank(data.get("product")) or not isinstance(data.get("product"), (str, int)):
        errors.add("product", "product (the card product's sku) is required")
    else:
        product = CardProduct.get_or_none(
            (CardProduct.store == store.id) & (CardProduct.sku == str(data["product"]).strip())
        )
        if product is None:
            errors.add("product", f"unknown card product '{str(data['product'])[:64]}'")
    issued_at = now
    if not blank(data.get("issued_at")):
        issued_at = errors.check("issued_at", parse_datetime, data["issued_at"], store.timezone)
    balance = remaining = expires_on = None
    if not blank(data.get("balance")):
        balance = errors.check("balance", parse_decimal, data["balance"], label="balance")
    if not blank(data.get("remaining_uses")):
        remaining = errors.check(
            "remaining_uses", parse_int, data["remaining_uses"], minimum=0, label="remaining_uses"
        )
    if not blank(data.get("expires_on")):
        expires_on = errors.check("expires_on", parse_date, data["expires_on"])
    if product is not None:
        if balance is None and product.kind == "stored_value":
            balance = product.value if product.value is not None else Decimal("0.00")
        if remaining is None and product.kind == "count":
            remaining = product.uses
            if remaining is None:
                errors.add("remaining_uses", "the product has no default number of uses")
        if expires_on is None and product.valid_days and issued_at is not None:
            expires_on = local_day(store, issued_at) + timedelta(days=product.valid_days)
    errors.raise_if_any()
    used_up = (product.kind == "count" and remaining == 0) or (
        product.kind == "stored_value" and balance == 0
    )
    with db.atomic():
        try:
            with db.atomic():
                card = CustomerCard.create(
                    store=store.id,
                    customer=customer.id,
                    product=product.id,
                    external_id=external_id,
                    balance=balance,
                    remaining_uses=remaining,
                    expires_on=expires_on,
                    status="used_up" if used_up else "active",
                    issued_at=issued_at,
                )
        except pw.IntegrityError:
            return CustomerCard.get(
                (CustomerCard.store == store.id) & (CustomerCard.external_id == external_id)
            )
        CardLedger.create(
            card=card.id,
            kind="issue",
            delta_balance=balance or 0,
            delta_uses=remaining or 0,
            balance_after=balance,
            uses_after=remaining,
            staff=staff.id if staff else None,
            at=issued_at,
        )
    return card


def use_card(
    card: CustomerCard,
    now: datetime,
    uses: int | None = None,
    amount: Decimal | None = None,
    event=None,
    staff: Staff | None = None,
) -> CustomerCard:
    """Deduct uses (count card) or an amount (stored value); never below zero; ledger row."""
    card = CustomerCard.get_by_id(card.id)
    product = CardProduct.get_by_id(card.product_id)
    store = Store.get_by_id(card.store_id)
    at = event.occurred_at if event is not None else now
    _check_usable(card, store, at)
    where = (CustomerCard.id == card.id) & (CustomerCard.status == "active")
    if product.kind == "count":
        uses = 1 if uses is None else uses
        if not isinstance(uses, int) or isinstance(uses, bool) or uses < 1:
            raise ValidationError("uses must be a whole number of at least 1", "card.uses")
        change = {CustomerCard.remaining_uses: CustomerCard.remaining_uses - uses}
        where &= CustomerCard.remaining_uses >= uses
        delta_uses, delta_balance = -uses, Decimal("0")
    elif product.kind == "stored_value":
        if amount is None:
            raise ValidationError("a stored-value card needs the amount to deduct", "card.amount")
        amount = Decimal(amount).quantize(Decimal("0.01"))
        if amount <= 0:
            raise ValidationError("the amount to deduct must be more than zero", "card.amount")
        change = {CustomerCard.balance: CustomerCard.balance - amount}
        where &= CustomerCard.balance >= amount
        delta_uses, delta_balance = 0, -amount
    else:
        change = {}
        delta_uses, delta_balance = 0, Decimal("0")
    change[CustomerCard.status] = "active"
    if card.last_used_at is None or card.last_used_at < at:
        change[CustomerCard.last_used_at] = at
    with db.atomic():
        landed = CustomerCard.update(change).where(where).execute()
        if not landed:
            fresh = CustomerCard.get_by_id(card.id)
            _check_usable(fresh, store, at)
            if product.kind == "count":
                raise ValidationError(
                    f"only {fresh.remaining_uses} use{'s' if fresh.remaining_uses != 1 else ''} "
                    f"left on this card, cannot use {uses}",
                    "card.uses",
                )
            raise ValidationError(
                f"the balance is only {_money(fresh.balance)}, cannot deduct {_money(amount)}",
                "card.amount",
            )
        if product.kind in ("count", "stored_value"):
            empty = (
                CustomerCard.remaining_uses == 0
                if product.kind == "count"
                else CustomerCard.balance == 0
            )
            CustomerCard.update(status="used_up").where(
                (CustomerCard.id == card.id) & empty
            ).execute()
        card = CustomerCard.get_by_id(card.id)
        CardLedger.create(
            card=card.id,
            event=event.id if event is not None else None,
            kind="use",
            delta_balance=delta_balance,
            delta_uses=delta_uses,
            balance_after=card.balance,
            uses_after=card.remaining_uses,
            staff=staff.id if staff else None,
            at=at,
        )
    return card


def _check_usable(card: CustomerCard, store: Store, at: datetime) -> None:
    if card.status == "used_up":
        raise ValidationError("this card is used up", "card")
    if card.status != "active":
        raise ValidationError(f"this card is {card.status}", "card")
    if card.expires_on is not None and local_day(store, at) > card.expires_on:
        raise ValidationError(f"this card expired on {card.expires_on.isoformat()}", "card")


def top_up(
    card: CustomerCard, amount: Decimal, now: datetime, event=None, staff: Staff | None = None
) -> CustomerCard:
    """Add value to a stored-value card (a used-up card becomes active again); ledger row."""
    card = CustomerCard.get_by_id(card.id)
    product = CardProduct.get_by_id(card.product_id)
    if product.kind != "stored_value":
        raise ValidationError("only a stored-value card can be topped up", "card")
    if card.status in ("cancelled", "expired"):
        raise ValidationError(f"this card is {card.status}", "card")
    if amount is None:
        raise ValidationError("the top-up amount is required", "amount")
    amount = Decimal(amount).quantize(Decimal("0.01"))
    if amount <= 0:
        raise ValidationError("the top-up amount must be more than zero", "amount")
    at = event.occurred_at if event is not None else now
    with db.atomic():
        CustomerCard.update(
            balance=pw.fn.COALESCE(CustomerCard.balance, 0) + amount, status="active"
        ).where(CustomerCard.id == card.id).execute()
        card = CustomerCard.get_by_id(card.id)
        CardLedger.create(
            card=card.id,
            event=event.id if event is not None else None,
            kind="top_up",
            delta_balance=amount,
            delta_uses=0,
            balance_after=card.balance,
            uses_after=card.remaining_uses,
            staff=staff.id if staff else None,
            at=at,
        )
    return card


def card_dict(card: CustomerCard) -> dict:
    """The JSON form of a customer card."""
    product = CardProduct.get_by_id(card.product_id)
    return {
        "id": card.id,
        "external_id": card.external_id,
        "customer": card.customer_id,
        "product": product.sku,
        "product_name": product.name,
        "kind": product.kind,
        "balance": _money(card.balance),
        "remaining_uses": card.remaining_uses,
        "expires_on": card.expires_on.isoformat() if card.expires_on else None,
        "status": card.status,
        "issued_at": card.issued_at.isoformat() if card.issued_at else None,
        "last_used_at": card.last_used_at.isoformat() if card.last_used_at else None,
    }


def _money(value) -> str | None:
    return None if value is None else str(Decimal(value).quantize(Decimal("0.01")))
