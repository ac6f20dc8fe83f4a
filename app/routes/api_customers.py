"""API v1: customers."""

from flask import g, jsonify, request

from app import clock
from app.models import Customer, CustomerTag, Tag
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
        from flask import abort

        abort(404)
    return jsonify(customers.customer_dict(customer))


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
    return jsonify(
        paginate(query, Customer.id, lambda rows: [customers.customer_dict(c) for c in rows])
    )
