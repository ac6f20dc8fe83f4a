"""Customer search and the profile with its timeline."""

from flask import Blueprint, abort, g, request
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required

from app import clock
from app.htmx import render
from app.models import CardProduct, Consent, Customer, CustomerCard, CustomerTag, FollowUp, Tag
from app.services import customers as customer_service
from app.services import loyalty, permissions, timeline
from app.services.permissions import manager_required

bp = Blueprint("customers", __name__)
PAGE = 30


def _page() -> int:
    try:
        return max(1, int(request.args.get("page", 1)))
    except ValueError:
        return 1


def _list_filter(values) -> customer_service.CustomerFilter:
    """The list's filters from the query string (or the bulk form), tags limited to the store."""
    ids = [int(v) for v in values.getlist("tag") if str(v).isdigit()]
    return customer_service.CustomerFilter(
        q=(values.get("q") or "")[:100].strip(),
        tag_ids=customer_service.store_tags(g.store.id, ids) if g.store is not None else [],
        match="any" if values.get("match") == "any" else "all",
    )


def _list(flt: customer_service.CustomerFilter, status: int = 200, **extra):
    """Render the customer list (page or fragment) for these filters."""
    page = _page()
    query = permissions.visible_customers(current_user.staff)
    tags = []
    if g.store is not None:
        query = query.where(Customer.store == g.store.id)
        tags = list(Tag.select().where(Tag.store == g.store.id).order_by(Tag.name))
    region = g.store.region if g.store else "MY"
    query = customer_service.filtered_customers(query, flt, region)
    customers = list(query.order_by(Customer.name, Customer.id).paginate(page, PAGE + 1))
    has_more = len(customers) > PAGE
    manager = current_user.role in ("manager", "owner") and g.store is not None
    total = query.count() if manager and not flt.is_empty() else None
    # A coupon code typed at the counter finds its client (and the coupon, to mark it used).
    coupon = loyalty.find_coupon(g.store, flt.q) if g.store is not None and flt.q else None
    ctx = {
        "coupon": coupon,
        "coupon_usable": bool(
            coupon and coupon.status == "active" and coupon.expires_at > clock.now()
        ),
        "customers": customers[:PAGE],
        "q": flt.q,
        "flt": flt,
        "tags": tags,
        "page": page,
        "has_more": has_more,
        "can_bulk": manager,
        "total": total,
        "bulk_errors": {},
        "message": "",
    }
    ctx.update(extra)
    return render("customers/index.html", "customers/_results.html", status=status, **ctx)


@bp.route("/customers")
@login_required
def index():
    """Search the customers of my store by name (any script) or phone (any format), and tags."""
    return _list(_list_filter(request.args))


@bp.route("/customers/bulk-tag", methods=["POST"])
@manager_required
def bulk_tag():
    """Add or remove a tag on every client the list's current filters match."""
    if g.store is None:
        abort(404)
    flt = _list_filter(request.form)
    errors = {}
    tag = Tag.get_or_none(Tag.store == g.store.id, Tag.id == request.form.get("bulk_tag", type=int))
    action = request.form.get("action", "")
    if tag is None:
        errors["bulk_tag"] = _("Choose a tag.")
    if action not in ("add", "remove"):
        errors["action"] = _("Choose add or remove.")
    if errors:
        return _list(flt, 422, bulk_errors=errors)
    n = customer_service.bulk_tag(g.store, flt, tag, action, current_user.staff, clock.now())
    if action == "add":
        message = ngettext(
            "“%(tag)s” added to %(num)s client.",
            "“%(tag)s” added to %(num)s clients.",
            n,
            tag=tag.name,
        )
    else:
        message = ngettext(
            "“%(tag)s” removed from %(num)s client.",
            "“%(tag)s” removed from %(num)s clients.",
            n,
            tag=tag.name,
        )
    return _list(flt, message=message)


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
