"""API v1: customers."""

from decimal import Decimal

from flask import abort, g, jsonify, request

from app import clock
from app.models import Consent, Customer, CustomerAttribute, CustomerTag, Staff, Tag
from app.routes.api import created, json_body, operation, paginate
from app.services import customers
from app.services import openapi as spec
from app.services.validation import ValidationError


@operation(
    "/customers",
    "POST",
    summary="Create or update a customer (matched by external_id, else by phone)",
    body=spec.ref("CustomerInput"),
    response=spec.ref("Customer"),
    statuses=(200, 201),
    tag="customers",
)
def create_customer():
    """Create or update one customer of the token's store."""
    customer, is_new = customers.upsert_customer(g.store, json_body(), clock.now(), source="api")
    return created(customers.customer_dict(customer), is_new)


@operation(
    "/customers/<int:customer_id>",
    "GET",
    summary="One customer",
    response=spec.ref("Customer"),
    tag="customers",
)
def get_customer(customer_id: int):
    """A customer of the token's store (404 for any other)."""
    customer = customers.find_customer(g.store, {"id": customer_id})
    if customer is None:
        abort(404)
    return jsonify(customers.customer_dict(customer))


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def customer_items(rows: list[Customer]) -> list[dict]:
    """customers.customer_dict for a whole page, in five queries instead of five per customer."""
    ids = [c.id for c in rows]
    if not ids:
        return []
    attributes: dict[int, dict] = {i: {} for i in ids}
    for a in CustomerAttribute.select().where(CustomerAttribute.customer.in_(ids)):
        attributes[a.customer_id][a.key] = a.value
    consent: dict[int, dict] = {i: {} for i in ids}
    for c in Consent.select().where(Consent.customer.in_(ids)):
        consent[c.customer_id][c.channel] = bool(c.granted)
    tags: dict[int, list] = {i: [] for i in ids}
    query = (
        CustomerTag.select(CustomerTag.customer, Tag.name)
        .join(Tag)
        .where(CustomerTag.customer.in_(ids))
        .tuples()
    )
    for customer_id, name in query:
        tags[customer_id].append(name)
    staff_ids = {c.assigned_staff_id for c in rows if c.assigned_staff_id}
    emails = {}
    if staff_ids:
        emails = dict(Staff.select(Staff.id, Staff.email).where(Staff.id.in_(staff_ids)).tuples())
    return [
        {
            "id": c.id,
            "external_id": c.external_id,
            "name": c.name,
            "phone": c.phone,
            "gender": c.gender,
            "birthday": c.birthday.isoformat() if c.birthday else None,
            "source": c.source,
            "level": c.level,
            "tags": sorted(tags[c.id]),
            "attributes": attributes[c.id],
            "assigned_staff": emails.get(c.assigned_staff_id),
            "consent": consent[c.id],
            "email": c.email,
            "line_id": c.line_id,
            "joined_at": _iso(c.joined_at),
            "first_visit_at": _iso(c.first_visit_at),
            "last_visit_at": _iso(c.last_visit_at),
            "visit_count": c.visit_count,
            "total_spend": str(Decimal(c.total_spend or 0).quantize(Decimal("0.01"))),
            "points": c.points,
            "store": g.store.key,
        }
        for c in rows
    ]


def customers_matching(store, phone: str | None, external_id: str | None, tag: str | None):
    """The store's customers filtered by phone (normalised), external id and tag."""
    query = Customer.select().where(Customer.store == store.id)
    if phone:
        try:
            normalised = customers.normalize_phone(phone, store.region)
        except ValueError as exc:
            raise ValidationError(str(exc), "phone") from None
        query = query.where(Customer.phone == normalised)
    if external_id:
        query = query.where(Customer.external_id == external_id.strip())
    if tag:
        tagged = (
            CustomerTag.select(CustomerTag.customer)
            .join(Tag)
            .where(Tag.store == store.id, Tag.name == tag.strip())
        )
        query = query.where(Customer.id.in_(tagged))
    return query


@operation(
    "/customers",
    "GET",
    summary="Customers, filtered by phone, external_id or tag",
    response=spec.page_of("Customer"),
    query=(
        ("phone", {"type": "string"}, "any format; normalised with the store's region"),
        ("external_id", {"type": "string"}, "the id in your system"),
        ("tag", {"type": "string"}, "tag name"),
        *spec.PAGE_PARAMS,
    ),
    tag="customers",
)
def list_customers():
    """A page of the store's customers matching the filters."""
    query = customers_matching(
        g.store,
        request.args.get("phone"),
        request.args.get("external_id"),
        request.args.get("tag"),
    )
    return jsonify(paginate(query, Customer.id, customer_items))
