"""API v1: card products and customer cards."""

from flask import g

from app import clock
from app.routes.api import created, json_body, operation
from app.services import cards
from app.services import openapi as spec


@operation(
    "/card-products",
    "POST",
    summary="Create or update a card product (matched by sku)",
    body=spec.ref("CardProductInput"),
    response=spec.ref("CardProduct"),
    statuses=(200, 201),
    tag="cards",
)
def create_card_product():
    """Create or update a card product of the token's store."""
    product, is_new = cards.upsert_product(g.store, json_body(), clock.now())
    return created(cards.product_dict(product), is_new)


@operation(
    "/cards",
    "POST",
    summary="Issue a card to a customer (idempotent on external_id)",
    body=spec.ref("CardInput"),
    response=spec.ref("Card"),
    statuses=(200, 201),
    tag="cards",
)
def create_card():
    """Issue a card; the same external_id again answers the card already issued."""
    data = json_body()
    existing = None
    if data.get("external_id") not in (None, ""):
        existing = cards.find_card(g.store, {"external_id": data["external_id"]})
    card = cards.issue_card(g.store, data, clock.now())
    return created(cards.card_dict(card), existing is None)
