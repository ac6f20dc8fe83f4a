"""The client's own page: points, rewards, coupons, cards and opt-out, behind a signed link."""

import secrets

from flask import Blueprint, abort, g, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _

from app import clock, config
from app.htmx import is_partial, redirect, render
from app.models import Consent, Customer, Reward, Store
from app.models.customers import CHANNELS
from app.services import customers as customer_service
from app.services import loyalty, messaging

bp = Blueprint("portal", __name__)


def _customer_or_404(token: str) -> Customer:
    """The customer of a valid token; 404 (the plain page) for anything else."""
    customer = loyalty.customer_for_token(token, clock.now())
    if customer is None:
        abort(404)
    g.store = Store.get_by_id(customer.store_id)
    return customer


def _locale(customer: Customer) -> str:
    """The client's language, else the store's, among the launch languages."""
    for code in (customer.locale, g.store.locale):
        code = (code or "").replace("-", "_")
        if code in config.LANGUAGES:
            return code
        if code.startswith("zh"):
            return "zh_Hant" if code in ("zh_TW", "zh_HK") else "zh_Hans"
        if code[:2] in config.LANGUAGES:
            return code[:2]
    return "en"


def _channels(customer: Customer) -> list[dict]:
    """The channels the client can be reached on, with whether they agreed to messages."""
    consents = {
        c.channel: c.granted for c in Consent.select().where(Consent.customer == customer.id)
    }
    reachable = {
        "whatsapp": bool(customer.phone),
        "sms": bool(customer.phone),
        "line": bool(customer.line_id),
        "email": bool(customer.email),
    }
    labels = {"whatsapp": "WhatsApp", "line": "LINE", "sms": _("SMS"), "email": _("E-mail")}
    return [
        {"key": ch, "label": labels[ch], "granted": consents.get(ch, False)}
        for ch in CHANNELS
        if reachable.get(ch) or ch in consents
    ]


def _page(token: str, customer: Customer, status: int = 200, error: str = "", coupon=None):
    """The client's page (or its main fragment), in the client's language."""
    now = clock.now()
    customer = Customer.get_by_id(customer.id)
    with force_locale(_locale(customer)):
        return render(
            "portal/index.html",
            "portal/_main.html",
            status=status,
            token=token,
            customer=customer,
            store=g.store,
            standing=loyalty.standing(customer),
            coupons=list(loyalty.active_coupons(customer, now)),
            cards=list(loyalty.active_cards(customer)),
            redeemed=loyalty.redeemed_so_far(customer),
            channels=_channels(customer),
            nonce=secrets.token_urlsafe(12),
            error=error,
            new_coupon=coupon,
            page_url=url_for("portal.show", token=token),
        )


@bp.route("/p/<token>")
def show(token: str):
    """The client's own page."""
    customer = _customer_or_404(token)
    resp = _page(token, customer)
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Robots-Tag"] = "noindex"
    return resp


@bp.route("/p/<token>/redeem", methods=["POST"])
def redeem(token: str):
    """The client takes a reward for points and gets a coupon."""
    customer = _customer_or_404(token)
    reward = Reward.get_or_none(
        (Reward.id == request.form.get("reward_id", type=int)) & (Reward.store == customer.store_id)
    )
    with force_locale(_locale(customer)):
        if reward is None:
            return _page(token, customer, 422, error=_("This reward is not available."))
        nonce = request.form.get("nonce") or ""
        try:
            coupon = loyalty.redeem(
                customer,
                reward,
                clock.now(),
                source="portal",
                request_key=f"portal:{nonce}" if nonce else None,
            )
        except loyalty.LoyaltyError as exc:
            return _page(token, customer, 422, error=str(exc))
    if not is_partial():
        return redirect(url_for("portal.show", token=token))
    return _page(token, customer, coupon=coupon)


@bp.route("/p/<token>/consent", methods=["POST"])
def consent(token: str):
    """The client switches messages on one channel off (or back on)."""
    customer = _customer_or_404(token)
    channel = request.form.get("channel", "")
    if channel not in CHANNELS:
        with force_locale(_locale(customer)):
            return _page(token, customer, 422, error=_("Unknown channel."))
    granted = request.form.get("granted") in ("1", "on", "true")
    now = clock.now()
    customer_service.set_consent(customer, channel, granted, source="portal", now=now)
    if not granted:
        messaging.suppress_for_opt_out(customer, now, channel=channel, reason="opted out (portal)")
    if not is_partial():
        return redirect(url_for("portal.show", token=token))
    return _page(token, customer)
