"""Recording what happened at the counter: a visit, a service, a card use, a top-up."""

import uuid
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from flask import Blueprint, abort, flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from peewee import fn

from app import clock
from app.htmx import is_partial, redirect, render, trigger
from app.models import CardProduct, Customer, CustomerCard, Event, EventItem, Store
from app.services import permissions

bp = Blueprint("counter", __name__)
KINDS = ("visit", "service_completed", "card_used", "top_up")


def _cards(customer: Customer) -> list[CustomerCard]:
    return list(
        CustomerCard.select(CustomerCard, CardProduct)
        .join(CardProduct)
        .where(CustomerCard.customer == customer.id, CustomerCard.status == "active")
        .order_by(CustomerCard.id)
    )


def _services(store: Store) -> list[tuple[str, str]]:
    """The services this store recorded lately, most frequent first."""
    since = clock.now() - timedelta(days=365)
    rows = (
        EventItem.select(EventItem.sku, fn.MAX(EventItem.name), fn.COUNT(EventItem.id))
        .join(Event)
        .where(
            Event.store == store.id,
            Event.type.in_(("service_completed", "purchase")),
            Event.occurred_at >= since,
        )
        .group_by(EventItem.sku)
        .order_by(fn.COUNT(EventItem.id).desc(), EventItem.sku)
        .limit(40)
        .tuples()
    )
    return [(sku, name or sku) for sku, name, _count in rows]


def _ctx(customer: Customer, **extra) -> dict:
    store = Store.get_by_id(customer.store_id)
    cards = _cards(customer)
    ctx = {
        "customer": customer,
        "store": store,
        "cards": cards,
        "count_cards": [c for c in cards if c.product.kind == "count"],
        "value_cards": [c for c in cards if c.product.kind == "stored_value"],
        "services": _services(store),
        "errors": {},
        "form": {},
        "done": None,
        "new_id": lambda: f"ui-{uuid.uuid4()}",
    }
    ctx.update(extra)
    return ctx


@bp.route("/customers/<int:customer_id>/counter")
@login_required
def new(customer_id: int):
    """The counter forms for one client: visit, service, card use, top-up."""
    customer = permissions.customer_or_404(current_user.staff, customer_id)
    return render("counter/new.html", "counter/_forms.html", **_ctx(customer))


def _amount(raw: str | None, required: bool) -> Decimal | None:
    raw = (raw or "").strip().replace(",", "")
    if not raw:
        if required:
            raise ValueError
        return None
    value = Decimal(raw)
    if value <= 0 or value > Decimal("1000000000"):
        raise ValueError
    return value.quantize(Decimal("0.01"))


def _build(kind: str, customer: Customer, ctx: dict, form) -> tuple[dict, dict]:
    """The event body for record_event, and the form errors."""
    errors: dict[str, str] = {}
    external_id = (form.get("external_id") or "").strip()[:100] or f"ui-{uuid.uuid4()}"
    now = clock.now()
    data: dict = {
        "external_id": external_id,
        "type": kind,
        "customer": {"id": customer.id},
        "occurred_at": now.isoformat(),
    }
    try:
        amount = _amount(form.get("amount"), required=kind == "top_up")
    except (InvalidOperation, ValueError):
        errors["amount"] = _("Enter an amount greater than zero.")
        amount = None
    if kind == "service_completed":
        sku = (form.get("sku") or "").strip()
        name = (form.get("service_name") or "").strip()[:200]
        if not sku and not name:
            errors["sku"] = _("Pick a service or type its name.")
        if not sku and name:
            sku = "ui:" + "-".join(name.lower().split())[:60]
        item = {"sku": sku[:64], "name": name or dict(ctx["services"]).get(sku, sku), "quantity": 1}
        if amount is not None:
            item["price"] = str(amount)
        data["items"] = [item]
    if kind in ("card_used", "top_up"):
        try:
            card = next(c for c in ctx["cards"] if c.id == int(form.get("card") or 0))
        except (StopIteration, ValueError):
            errors["card"] = _("Pick a card.")
            card = None
        if card is not None:
            ref: dict = {"id": card.id}
            if kind == "card_used" and card.product.kind == "count":
                try:
                    uses = int(form.get("uses") or 1)
                    if uses < 1 or uses > 1000:
                        raise ValueError
                    ref["uses"] = uses
                except ValueError:
                    errors["uses"] = _("Enter a whole number of uses (at least 1).")
            elif amount is None:
                errors["amount"] = _("Enter an amount greater than zero.")
            else:
                ref["amount"] = str(amount)
            data["card"] = ref
            amount = None if kind == "card_used" else amount
    if amount is not None:
        data["amount"] = str(amount)
    return data, errors


@bp.route("/customers/<int:customer_id>/counter", methods=["POST"])
@login_required
def record(customer_id: int):
    """Record one thing that happened, as an event the plans react to (idempotent per form)."""
    from app.services import events
    from app.services.validation import ValidationError

    customer = permissions.customer_or_404(current_user.staff, customer_id)
    kind = request.form.get("kind", "")
    if kind not in KINDS:
        abort(400)
    ctx = _ctx(customer, kind=kind)
    data, errors = _build(kind, customer, ctx, request.form)
    created = False
    if not errors:
        try:
            event, created = events.record_event(
                ctx["store"], data, clock.now(), source="ui", staff=current_user.staff
            )
        except ValidationError as exc:
            for err in exc.errors:
                key = (err.get("field") or "form").split(".")[-1]
                errors[key if key in ("amount", "uses", "card", "sku") else "form"] = err["message"]
    if errors:
        ctx.update(errors=errors, form=request.form)
        return render("counter/new.html", "counter/_form.html", status=422, **ctx)
    customer = Customer.get_by_id(customer.id)
    card = None
    if data.get("card"):
        card = CustomerCard.get_by_id(data["card"]["id"])
    ctx = _ctx(customer, kind=kind, done={"card": card, "created": created, "event": event})
    if is_partial():
        return trigger(render("counter/new.html", "counter/_form.html", **ctx), "eventRecorded")
    flash(_("Recorded.") if created else _("Already recorded."), "success")
    return redirect(url_for("customers.show", customer_id=customer.id))
