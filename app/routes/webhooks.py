"""Inbound provider webhooks: delivery statuses and customer replies (signed, CSRF-exempt)."""

import base64
import hashlib
import hmac
import logging
import time

from flask import Blueprint, abort, make_response, request
from twilio.request_validator import RequestValidator

from app import clock, csrf
from app.models import ChannelSetting, Customer, Store
from app.services import message_templates, messaging, secrets_box
from app.services.channels import whatsapp
from app.services.channels.webhook import verify as verify_webhook

bp = Blueprint("webhooks", __name__, url_prefix="/hooks")
csrf.exempt(bp)
log = logging.getLogger(__name__)

TWILIO_STATUS = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
}


def _setting(store_key: str, channel: str) -> tuple[Store, dict]:
    """The store and its decrypted credentials for a channel, or 404."""
    store = Store.get_or_none(Store.key == store_key)
    if store is None:
        abort(404)
    setting = ChannelSetting.get_or_none(
        (ChannelSetting.store == store.id) & (ChannelSetting.channel == channel)
    )
    if setting is None:
        abort(404)
    return store, secrets_box.decrypt(setting.secret)


def _by_phone(store: Store, phone: str) -> Customer | None:
    phone = phone.strip()
    if phone and not phone.startswith("+"):
        phone = "+" + phone
    return Customer.get_or_none((Customer.store == store.id) & (Customer.phone == phone))


def _ok(body="", status=200, mimetype="text/plain"):
    resp = make_response(body, status)
    resp.mimetype = mimetype
    return resp


@bp.route("/whatsapp/<store_key>", methods=["GET"])
def whatsapp_verify(store_key):
    """Meta's subscription check: echo hub.challenge when hub.verify_token matches."""
    _store, secret = _setting(store_key, "whatsapp")
    mode = request.args.get("hub.mode")
    token = request.args.get("hub.verify_token", "")
    expected = secret.get("verify_token", "")
    if mode == "subscribe" and expected and hmac.compare_digest(token, expected):
        return _ok(request.args.get("hub.challenge", ""))
    abort(403)


@bp.route("/whatsapp/<store_key>", methods=["POST"])
def whatsapp_events(store_key):
    """WhatsApp statuses (sent/delivered/read/failed) and inbound messages."""
    store, secret = _setting(store_key, "whatsapp")
    raw = request.get_data()
    given = request.headers.get("X-Hub-Signature-256", "")
    app_secret = secret.get("app_secret", "")
    expected = "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    if not app_secret or not hmac.compare_digest(given, expected):
        abort(401)
    payload = request.get_json(silent=True) or {}
    now = clock.now()
    for entry in payload.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value") or {}
            if change.get("field") == "message_template_status_update":
                message_templates.handle_status_webhook(store, value, now)
                continue
            for status in value.get("statuses") or []:
                _whatsapp_status(store, status, now)
            for message in value.get("messages") or []:
                text = (message.get("text") or {}).get("body") or (
                    (message.get("button") or {}).get("text") or ""
                )
                messaging.handle_reply(
                    store,
                    "whatsapp",
                    _by_phone(store, message.get("from", "")),
                    text,
                    "whatsapp",
                    now,
                )
    return _ok("ok")


def _whatsapp_status(store: Store, status: dict, now) -> None:
    message = messaging.find_message(
        store, status.get("id"), status.get("biz_opaque_callback_data")
    )
    if message is None:
        return
    state = status.get("status")
    errors = status.get("errors") or []
    code = errors[0].get("code") if errors else None
    detail = {"provider_status": state, "code": code}
    if state == "failed":
        error = f"{code}: {errors[0].get('title', '')}" if errors else "failed"
        messaging.apply_status(message, "failed", now, detail, error=error)
        if code in whatsapp.CONSENT_CODES:
            messaging.opt_out(
                Customer.get_by_id(message.customer_id), "whatsapp", f"provider:{code}", now
            )
        return
    if state in ("sent", "delivered", "read"):
        if message.provider_message_id is None and status.get("id"):
            message.provider_message_id = status["id"]
            message.save(only=[type(message).provider_message_id])
        messaging.apply_status(message, state, now, detail)


@bp.route("/line/<store_key>", methods=["POST"])
def line_events(store_key):
    """LINE webhook events: text replies and unfollows (X-Line-Signature checked)."""
    store, secret = _setting(store_key, "line")
    raw = request.get_data()
    channel_secret = secret.get("channel_secret", "")
    digest = hmac.new(channel_secret.encode(), raw, hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    if not channel_secret or not hmac.compare_digest(
        request.headers.get("X-Line-Signature", ""), expected
    ):
        abort(401)
    now = clock.now()
    for event in (request.get_json(silent=True) or {}).get("events") or []:
        user_id = (event.get("source") or {}).get("userId", "")
        customer = Customer.get_or_none(
            (Customer.store == store.id) & (Customer.line_id == user_id)
        )
        if event.get("type") == "message" and (event.get("message") or {}).get("type") == "text":
            messaging.handle_reply(store, "line", customer, event["message"]["text"], "line", now)
        elif event.get("type") == "unfollow" and customer is not None:
            messaging.opt_out(customer, "line", "unfollow:line", now)
    return _ok("ok")


def _twilio_valid(secret: dict) -> bool:
    token = secret.get("auth_token", "")
    if not token:
        return False
    validator = RequestValidator(token)
    return validator.validate(
        request.url, request.form.to_dict(), request.headers.get("X-Twilio-Signature", "")
    )


@bp.route("/twilio/<store_key>/status", methods=["POST"])
def twilio_status(store_key):
    """Twilio's StatusCallback: queued/sent/delivered/undelivered/failed (signature checked)."""
    store, secret = _setting(store_key, "sms")
    if not _twilio_valid(secret):
        abort(401)
    now = clock.now()
    message = messaging.find_message(store, request.form.get("MessageSid"), None)
    state = TWILIO_STATUS.get(request.form.get("MessageStatus", ""))
    if message is not None and state:
        code = request.form.get("ErrorCode")
        detail = {"provider_status": request.form.get("MessageStatus"), "code": code}
        messaging.apply_status(message, state, now, detail, error=f"{code or ''} {state}".strip())
        if state == "failed" and code == "21610":
            messaging.opt_out(Customer.get_by_id(message.customer_id), "sms", "provider:21610", now)
    return _ok("", 204)


@bp.route("/twilio/<store_key>/inbound", methods=["POST"])
def twilio_inbound(store_key):
    """An inbound SMS (STOP and friends opt out); answers empty TwiML."""
    store, secret = _setting(store_key, "sms")
    if not _twilio_valid(secret):
        abort(401)
    messaging.handle_reply(
        store,
        "sms",
        _by_phone(store, request.form.get("From", "")),
        request.form.get("Body", ""),
        "twilio",
        clock.now(),
    )
    return _ok('<?xml version="1.0" encoding="UTF-8"?><Response></Response>', 200, "text/xml")


@bp.route("/webhook/<store_key>", methods=["POST"])
def webhook_events(store_key):
    """Our generic webhook channel's callbacks: {"type": "status"|"reply", …}, signed like ours."""
    store, secret = _setting(store_key, "webhook")
    raw = request.get_data()
    if not verify_webhook(
        secret.get("signing_secret", ""),
        request.headers.get("X-Revisit-Timestamp", ""),
        raw,
        request.headers.get("X-Revisit-Signature", ""),
        now=time.time(),
    ):
        abort(401)
    payload = request.get_json(silent=True) or {}
    now = clock.now()
    if payload.get("type") == "status":
        message = messaging.find_message(store, payload.get("provider_id"), payload.get("id"))
        if message is None:
            abort(404)
        messaging.apply_status(
            message,
            payload.get("status", ""),
            now,
            {"provider_status": payload.get("status")},
            error=str(payload.get("error") or ""),
        )
        return _ok("ok")
    if payload.get("type") == "reply":
        customer = None
        if payload.get("customer_id"):
            customer = Customer.get_or_none(
                (Customer.store == store.id) & (Customer.id == payload["customer_id"])
            )
        elif payload.get("phone"):
            customer = _by_phone(store, payload["phone"])
        channel = payload.get("channel") or "webhook"
        messaging.handle_reply(store, channel, customer, payload.get("text", ""), "webhook", now)
        return _ok("ok")
    abort(400)
