"""Automatic messages: the manager's outbox list, channel settings, and the unsubscribe page."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from peewee import JOIN

from app import clock, csrf
from app.htmx import redirect, render
from app.models import ChannelSetting, Customer, Message, Plan
from app.models.messages import MESSAGE_STATUSES
from app.services import messaging
from app.services.channels import CHANNEL_NAMES
from app.services.permissions import manager_required

bp = Blueprint("messages", __name__)

PAGE_SIZE = 50
# Which fields each channel's settings form shows; secret ones are stored encrypted.
FIELDS = {
    "whatsapp": (
        ["base_url", "api_version", "phone_number_id", "waba_id", "template", "language"],
        ["access_token", "app_secret", "verify_token"],
    ),
    "line": (["base_url"], ["channel_access_token", "channel_secret"]),
    "sms": (["base_url", "from", "messaging_service_sid"], ["account_sid", "auth_token"]),
    "email": (["from", "from_name", "reply_to"], ["smtp_url"]),
    "webhook": (["url"], ["signing_secret"]),
    "log_only": ([], []),
}


def _day_start(value: str, tz: ZoneInfo) -> datetime | None:
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return None
    return datetime.combine(day, time(0, 0), tzinfo=tz)


@bp.route("/messages")
@manager_required
def index():
    """The store's messages with filters, per-plan rates and quota warnings."""
    store = g.store
    if store is None:
        abort(404)
    args = request.args
    query = Message.select().where(Message.store == store.id)
    if args.get("status") in MESSAGE_STATUSES:
        query = query.where(Message.status == args["status"])
    if args.get("channel") in CHANNEL_NAMES:
        query = query.where(Message.channel == args["channel"])
    if args.get("plan", "").isdigit():
        query = query.where(Message.plan == int(args["plan"]))
    if args.get("customer", "").isdigit():
        query = query.where(Message.customer == int(args["customer"]))
    tz = ZoneInfo(store.timezone)
    start = _day_start(args.get("from", ""), tz)
    if start:
        query = query.where(Message.created_at >= start)
    end = _day_start(args.get("to", ""), tz)
    if end:
        query = query.where(Message.created_at < end + timedelta(days=1))
    page = max(1, int(args.get("page", "1"))) if args.get("page", "1").isdigit() else 1
    items = list(
        query.select(Message, Customer.name.alias("customer_name"), Plan.name.alias("plan_name"))
        .join(Customer, on=(Message.customer == Customer.id))
        .switch(Message)
        .join(Plan, JOIN.LEFT_OUTER, on=(Message.plan == Plan.id))
        .order_by(Message.created_at.desc(), Message.id.desc())
        .paginate(page, PAGE_SIZE)
        .objects()
    )
    now = clock.now()
    ctx = dict(
        items=items,
        page=page,
        has_next=len(items) == PAGE_SIZE,
        filters={
            k: args.get(k, "") for k in ("status", "channel", "plan", "customer", "from", "to")
        },
        statuses=MESSAGE_STATUSES,
        channels=CHANNEL_NAMES,
        plans=list(Plan.select(Plan.id, Plan.name).where(Plan.store == store.id)),
        rates=messaging.plan_rates(store),
        warnings=messaging.quota_warnings(store, now),
    )
    return render("messages/index.html", "messages/_list.html", **ctx)


def _channels_page(errors: dict | None = None, form=None, status: int = 200):
    store = g.store
    settings = {
        s.channel: s for s in ChannelSetting.select().where(ChannelSetting.store == store.id)
    }
    masked = {name: messaging.masked_secrets(s) for name, s in settings.items()}
    return render(
        "messages/channels.html",
        "messages/_channels.html",
        status=status,
        settings=settings,
        masked=masked,
        fields=FIELDS,
        defaults={name: messaging.default_rate(name) for name in FIELDS},
        errors=errors or {},
        form=form,
        order=(form or {}).get("__order__")
        or store.setting("channel_order", messaging.DEFAULT_ORDER),
        order_choices=messaging.ORDER_CHOICES,
        hooks_base=messaging.public_url() + "/hooks",
    )


@bp.route("/messages/channels")
@manager_required
def channels():
    """The store's channels: what is switched on, limits, and masked credentials."""
    if g.store is None:
        abort(404)
    return _channels_page()


@bp.route("/messages/channels/<channel>", methods=["POST"])
@manager_required
def save_channel(channel):
    """Save one channel's settings; blank secret fields keep what is stored."""
    store = g.store
    if store is None or channel not in FIELDS:
        abort(404)
    plain, secret = FIELDS[channel]
    form = request.form
    rate, quota, errors = messaging.channel_limits_from_form(form)
    if errors:
        return _channels_page({channel: errors}, {channel: form}, status=422)
    messaging.configure_channel(
        store,
        channel,
        clock.now(),
        enabled=form.get("enabled") in ("1", "on", "true"),
        config={k: form.get(k, "").strip() for k in plain},
        secrets={k: form.get(k, "").strip() for k in secret},
        rate=rate,
        daily_quota=quota,
    )
    flash(_("Channel settings saved."), "success")
    return redirect(url_for("messages.channels"))


@bp.route("/messages/channels/order", methods=["POST"])
@manager_required
def save_channel_order():
    """Save the store's fallback order of channels (the first reachable one is used)."""
    store = g.store
    if store is None:
        abort(404)
    order = request.form.getlist("order")
    errors = messaging.set_channel_order(store, order, current_user.staff, clock.now())
    if errors:
        return _channels_page({"__order__": errors}, {"__order__": order}, status=422)
    flash(_("Channel order saved."), "success")
    return redirect(url_for("messages.channels"))


def _unsubscribe_target(token: str) -> tuple[Customer, str]:
    found = messaging.read_unsubscribe_token(token)
    if found is None:
        abort(404)
    customer = Customer.get_or_none(Customer.id == found[0])
    if customer is None:
        abort(404)
    return customer, found[1]


@bp.route("/u/<token>", methods=["GET"])
def unsubscribe(token):
    """Ask the client to confirm the unsubscribe (no login; a GET never changes anything)."""
    customer, channel = _unsubscribe_target(token)
    done = not messaging.has_consent(customer, channel)
    return render_template("messages/unsubscribe.html", token=token, done=done, channel=channel)


@csrf.exempt
@bp.route("/u/<token>", methods=["POST"])
def unsubscribe_confirm(token):
    """Confirm the unsubscribe (also RFC 8058 one-click); safe to repeat."""
    customer, channel = _unsubscribe_target(token)
    if messaging.has_consent(customer, channel):
        messaging.opt_out(customer, channel, "unsubscribe_link", clock.now())
    return render_template("messages/unsubscribe.html", token=token, done=True, channel=channel)
