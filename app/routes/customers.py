"""Customer search and profile."""

import phonenumbers
from flask import Blueprint, g, request
from flask_login import current_user, login_required

from app.htmx import render
from app.models import Customer
from app.services import permissions

bp = Blueprint("customers", __name__)
PAGE = 30


def _search(query, q: str, region: str):
    """Match by phone in any format, else by name (any script)."""
    q = q.strip()
    if not q:
        return query
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) >= 6:
        try:
            parsed = phonenumbers.parse(q, region)
            e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            return query.where((Customer.phone == e164) | Customer.phone.contains(digits))
        except phonenumbers.NumberParseException:
            return query.where(Customer.phone.contains(digits))
    return query.where(Customer.name.contains(q))


@bp.route("/customers")
@login_required
def index():
    """Search the customers of my stores."""
    q = request.args.get("q", "")
    try:
        page = max(1, int(request.args.get("page", 1)))
    except ValueError:
        page = 1
    query = permissions.visible_customers(current_user.staff)
    if g.store is not None:
        query = query.where(Customer.store == g.store.id)
    query = _search(query, q, g.store.region if g.store else "MY")
    customers = list(query.order_by(Customer.name).paginate(page, PAGE + 1))
    has_more = len(customers) > PAGE
    return render(
        "customers/index.html",
        "customers/_results.html",
        customers=customers[:PAGE],
        q=q,
        page=page,
        has_more=has_more,
    )


@bp.route("/customers/<int:customer_id>")
@login_required
def show(customer_id: int):
    """One customer's profile."""
    customer = permissions.customer_or_404(current_user.staff, customer_id)
    return render("customers/show.html", "customers/_profile.html", customer=customer)
