"""Customer search and the profile with its timeline."""

from flask import Blueprint, g, request
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.htmx import render
from app.models import CardProduct, Consent, Customer, CustomerCard, CustomerTag, FollowUp, Tag
from app.services import followups as followup_service
from app.services import permissions, timeline

bp = Blueprint("customers", __name__)
PAGE = 30


def _page() -> int:
    try:
        return max(1, int(request.args.get("page", 1)))
    except ValueError:
        return 1


@bp.route("/customers")
@login_required
def index():
    """Search the customers of my store by name (any script) or phone (any format)."""
    q = request.args.get("q", "")[:100].strip()
    page = _page()
    query = permissions.visible_customers(current_user.staff)
    if g.store is not None:
        query = query.where(Customer.store == g.store.id)
    if q:
        region = g.store.region if g.store else "MY"
        query = query.where(followup_service.customer_match(q, region))
    customers = list(query.order_by(Customer.name, Customer.id).paginate(page, PAGE + 1))
    has_more = len(customers) > PAGE
    return render(
        "customers/index.html",
        "customers/_results.html",
        customers=customers[:PAGE],
        q=q,
        page=page,
        has_more=has_more,
    )


def _profile_context(customer: Customer, page: int = 1) -> dict:
    entries, more = timeline.timeline(customer, page)
    cards = list(
        CustomerCard.select(CustomerCard, CardProduct)
        .join(CardProduct)
        .where(CustomerCard.customer == customer.id)
        .order_by(CustomerCard.status, CustomerCard.expires_on.is_null(), CustomerCard.expires_on)
        .limit(20)
    )
    tags = list(
        Tag.select(Tag.name)
        .join(CustomerTag)
        .where(CustomerTag.customer == customer.id)
        .order_by(Tag.name)
    )
    consents = {
        c.channel: c.granted for c in Consent.select().where(Consent.customer == customer.id)
    }
    open_followup = (
        permissions.visible_followups(current_user.staff)
        .where(FollowUp.open_customer == customer.id)
        .first()
    )
    return {
        "customer": customer,
        "entries": entries,
        "more": more,
        "page": page,
        "cards": cards,
        "tags": tags,
        "consents": consents,
        "open_followup": open_followup,
        "labels": {
            "reached": _("Reached"),
            "booked": _("Booked"),
            "no_answer": _("No answer"),
            "declined": _("Declined"),
            "wrong_number": _("Wrong number"),
            "opted_out": _("Opted out"),
        },
    }


@bp.route("/customers/<int:customer_id>")
@login_required
def show(customer_id: int):
    """One customer's profile: facts, cards, and everything that happened, newest first."""
    customer = permissions.customer_or_404(current_user.staff, customer_id)
    ctx = _profile_context(customer, _page())
    return render("customers/show.html", "customers/_profile.html", **ctx)


@bp.route("/customers/<int:customer_id>/timeline")
@login_required
def history(customer_id: int):
    """The next page of a customer's timeline."""
    customer = permissions.customer_or_404(current_user.staff, customer_id)
    ctx = _profile_context(customer, _page())
    return render("customers/show.html", "customers/_timeline.html", **ctx)
