"""Loyalty for staff: points on the profile, redeeming at the counter, the manager's console."""

import secrets

import qrcode
import qrcode.image.svg
from flask import Blueprint, abort, flash, g, make_response, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app import clock
from app.htmx import is_partial, redirect, render
from app.models import Coupon, Customer, Reward, Store
from app.services import loyalty, permissions

bp = Blueprint("loyalty", __name__)

SETTING_FIELDS = {
    "loyalty.enabled": "bool",
    "loyalty.signup_bonus": "int",
    "loyalty.points_per_unit": "decimal",
    "loyalty.member_day_multiplier": "int",
    "loyalty.expiry_months": "int",
    "loyalty.coupon_days": "int",
    "loyalty.refund_expired_coupons": "bool",
    "loyalty.value_per_point": "decimal",
    "loyalty.portal_link_days": "int",
}


def _points_context(customer: Customer, error: str = "", notice: str = "", coupon=None) -> dict:
    """Everything the points fragment shows about one customer."""
    now = clock.now()
    customer = Customer.get_by_id(customer.id)
    return {
        "customer": customer,
        "standing": loyalty.standing(customer),
        "coupons": list(loyalty.active_coupons(customer, now)),
        "entries": list(loyalty.recent_entries(customer)),
        "portal_url": url_for(
            "portal.show", token=loyalty.portal_token(customer, now), _external=True
        ),
        "nonce": secrets.token_urlsafe(12),
        "error": error,
        "notice": notice,
        "new_coupon": coupon,
        "can_adjust": current_user.role in ("manager", "owner"),
    }


def _points_response(customer: Customer, status: int = 200, **extra):
    """The points fragment for htmx; the points page otherwise (after a POST: 303 back)."""
    if request.method == "POST" and status == 200 and not is_partial():
        if extra.get("notice"):
            flash(extra["notice"], "success")
        return redirect(url_for("loyalty.points", customer_id=customer.id))
    return render(
        "loyalty/points.html",
        "loyalty/_points.html",
        status=status,
        **_points_context(customer, **extra),
    )


@bp.route("/customers/<int:customer_id>/points")
@login_required
def points(customer_id: int):
    """A customer's points, coupons and rewards within reach."""
    customer = permissions.customer_or_404(current_user.staff, customer_id)
    return _points_response(customer)


@bp.route("/customers/<int:customer_id>/points/redeem", methods=["POST"])
@login_required
def redeem(customer_id: int):
    """Redeem a reward for the customer at the counter."""
    customer = permissions.customer_or_404(current_user.staff, customer_id)
    reward = Reward.get_or_none(
        (Reward.id == request.form.get("reward_id", type=int)) & (Reward.store == customer.store_id)
    )
    if reward is None:
        return _points_response(customer, 422, error=_("This reward is not available."))
    try:
        coupon = loyalty.redeem(
            customer,
            reward,
            clock.now(),
            staff=current_user.staff,
            source="counter",
            request_key=f"staff:{request.form.get('nonce', '')}"
            if request.form.get("nonce")
            else None,
        )
    except loyalty.LoyaltyError as exc:
        return _points_response(customer, 422, error=str(exc))
    return _points_response(
        customer,
        notice=_("Coupon %(code)s issued for %(reward)s.", code=coupon.code, reward=reward.name),
        coupon=coupon,
    )


@bp.route("/customers/<int:customer_id>/points/adjust", methods=["POST"])
@permissions.manager_required
def adjust(customer_id: int):
    """A manager adds or takes away points, with a reason."""
    customer = permissions.customer_or_404(current_user.staff, customer_id)
    try:
        delta = int((request.form.get("delta") or "").strip())
    except ValueError:
        return _points_response(customer, 422, error=_("Enter a whole number of points."))
    try:
        loyalty.adjust(
            customer, delta, request.form.get("reason", ""), current_user.staff, clock.now()
        )
    except loyalty.LoyaltyError as exc:
        return _points_response(customer, 422, error=str(exc))
    return _points_response(customer, notice=_("Points adjusted."))


@bp.route("/customers/<int:customer_id>/coupons/<int:coupon_id>/use", methods=["POST"])
@login_required
def use_coupon(customer_id: int, coupon_id: int):
    """Mark the customer's coupon used at the counter."""
    customer = permissions.customer_or_404(current_user.staff, customer_id)
    coupon = Coupon.get_or_none((Coupon.id == coupon_id) & (Coupon.customer == customer.id))
    if coupon is None:
        abort(404)
    try:
        loyalty.use_coupon(coupon, current_user.staff, clock.now())
    except loyalty.LoyaltyError as exc:
        return _points_response(customer, 422, error=str(exc))
    return _points_response(customer, notice=_("Coupon %(code)s used.", code=coupon.code))


@bp.route("/customers/<int:customer_id>/portal-link/rotate", methods=["POST"])
@login_required
def rotate_link(customer_id: int):
    """Give the customer a new page link; every older link stops working."""
    customer = permissions.customer_or_404(current_user.staff, customer_id)
    loyalty.rotate_portal_secret(customer)
    return _points_response(customer, notice=_("New link made; older links no longer work."))


@bp.route("/customers/<int:customer_id>/portal-qr")
@login_required
def portal_qr(customer_id: int):
    """The QR code of the customer's own page, as SVG, to show at the counter."""
    customer = permissions.customer_or_404(current_user.staff, customer_id)
    url = url_for("portal.show", token=loyalty.portal_token(customer, clock.now()), _external=True)
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    resp = make_response(image.to_string(encoding="unicode"))
    resp.headers["Content-Type"] = "image/svg+xml; charset=utf-8"
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


# ---------------------------------------------------------------- manager console


def _console_store() -> Store:
    if g.store is None:
        abort(404)
    return g.store


def _reward_or_404(reward_id: int) -> Reward:
    reward = Reward.get_or_none(Reward.id == reward_id)
    if reward is None or reward.store_id not in permissions.store_ids(current_user.staff):
        abort(404)
    return reward


def _rewards_response(store: Store, status: int = 200, error: str = "", field: str = "", form=None):
    """The rewards catalogue fragment for htmx; after a plain POST, back to the console."""
    if request.method == "POST" and status == 200 and not is_partial():
        return redirect(url_for("loyalty.index"))
    if not is_partial():
        return _console(store, status=status, error=error, field=field, form=form)
    return render(
        "loyalty/index.html",
        "loyalty/_rewards.html",
        status=status,
        store=store,
        rewards=list(loyalty.rewards_for(store, active_only=False)),
        error=error,
        field=field,
        form=form or {},
    )


def _console(store: Store, status: int = 200, **extra):
    now = clock.now()
    ctx = {
        "store": store,
        "numbers": loyalty.report(store, now),
        "rewards": list(loyalty.rewards_for(store, active_only=False)),
        "settings": {name: loyalty.setting(store, name) for name in SETTING_FIELDS},
        "tiers": loyalty.setting(store, "loyalty.tiers") or [],
        "campaigns": loyalty.setting(store, "loyalty.campaigns") or [],
        "error": "",
        "field": "",
        "form": {},
        "settings_error": "",
    }
    ctx.update({k: v for k, v in extra.items() if v is not None})
    return render("loyalty/index.html", "loyalty/_console.html", status=status, **ctx)


@bp.route("/loyalty")
@permissions.manager_required
def index():
    """Points issued, redeemed, outstanding and expiring, and the rewards catalogue."""
    return _console(_console_store())


@bp.route("/loyalty/rewards", methods=["POST"])
@permissions.manager_required
def create_reward():
    """Add a reward to the current store's catalogue."""
    store = _console_store()
    try:
        loyalty.save_reward(store, request.form)
    except loyalty.LoyaltyError as exc:
        return _rewards_response(store, 422, error=str(exc), field=exc.field, form=request.form)
    return _rewards_response(store)


@bp.route("/loyalty/rewards/<int:reward_id>", methods=["POST"])
@permissions.manager_required
def update_reward(reward_id: int):
    """Change a reward (name, price, stock, on/off)."""
    reward = _reward_or_404(reward_id)
    store = Store.get_by_id(reward.store_id)
    try:
        loyalty.save_reward(store, request.form, reward)
    except loyalty.LoyaltyError as exc:
        return _rewards_response(store, 422, error=str(exc), field=exc.field)
    return _rewards_response(store)


@bp.route("/loyalty/rewards/<int:reward_id>/delete", methods=["POST"])
@permissions.manager_required
def delete_reward(reward_id: int):
    """Remove a reward (switched off instead when coupons refer to it)."""
    reward = _reward_or_404(reward_id)
    loyalty.remove_reward(reward)
    return _rewards_response(Store.get_by_id(reward.store_id))


@bp.route("/loyalty/settings", methods=["POST"])
@permissions.manager_required
def save_settings():
    """Save the current store's points rules."""
    store = _console_store()
    values, errors = loyalty.parse_settings(request.form, SETTING_FIELDS)
    if errors:
        return _console(store, status=422, settings_error=str(errors[0]))
    store = loyalty.save_settings(store, values)
    if "loyalty.tiers" in values:
        # New thresholds show on profiles and in audiences now, not after the nightly run.
        loyalty.recompute_tiers(store, clock.now())
    if not is_partial():
        return redirect(url_for("loyalty.index"))
    return _console(Store.get_by_id(store.id))
