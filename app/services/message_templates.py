"""Message templates for plans: per-language bodies, previews, and WhatsApp approval status.

A template's body uses the script variables (`{name}`, `{member_day}` …). For WhatsApp each
language variant is one template Meta approves (name + language); its body is what a manager
submits there, with the variables numbered `{{1}}`, `{{2}}` … in order of appearance, and the
values are sent as the body parameters in that order.
"""

import logging
import re
from datetime import datetime
from urllib.parse import urlencode

from app.models import (
    ChannelSetting,
    Customer,
    CustomerCard,
    MessageTemplate,
    MessageTemplateVariant,
    Occurrence,
    Plan,
    Staff,
    Store,
)
from app.services import audit, scripts, secrets_box
from app.services.channels.base import ChannelError, http_json
from app.services.channels.whatsapp import DEFAULT_BASE_URL, DEFAULT_VERSION
from app.services.validation import Errors, ValidationError

log = logging.getLogger(__name__)

LOCALES = scripts.LOCALES
CHANNELS = ("whatsapp", "line", "sms", "email", "webhook")
# Meta's language codes for our launch languages.
WA_LANGUAGES = {"en": "en", "zh_Hans": "zh_CN", "zh_Hant": "zh_TW", "th": "th", "ms": "ms"}
WA_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
WA_LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")
META_STATUS = {"APPROVED": "approved", "PENDING": "pending", "REJECTED": "rejected"}


# ---------------------------------------------------------------- reading


def templates_of(store_id: int) -> list[MessageTemplate]:
    """The store's message templates by name."""
    return list(
        MessageTemplate.select()
        .where(MessageTemplate.store == store_id)
        .order_by(MessageTemplate.name)
    )


def variants_of(template: MessageTemplate) -> dict[str, MessageTemplateVariant]:
    """A template's language variants keyed by locale, in launch-language order."""
    rows = {
        v.locale: v
        for v in MessageTemplateVariant.select().where(
            MessageTemplateVariant.template == template.id
        )
    }
    order = {loc: i for i, loc in enumerate(LOCALES)}
    return dict(sorted(rows.items(), key=lambda kv: order.get(kv[0], 99)))


def is_whatsapp(template: MessageTemplate) -> bool:
    """Whether the template is sent as an approved WhatsApp template."""
    return bool(template.wa_name) and template.channel in ("", "whatsapp")


def approval(template: MessageTemplate, variants=None) -> str:
    """The template's WhatsApp status overall: rejected if any language is, pending if any
    language is, approved when all are ("" when not a WhatsApp template)."""
    if not is_whatsapp(template):
        return ""
    statuses = {v.wa_status or "pending" for v in (variants or variants_of(template)).values()}
    for status in ("rejected", "pending"):
        if status in statuses:
            return status
    return "approved" if statuses else "pending"


def usage(template: MessageTemplate) -> list[Plan]:
    """Plans (not archived) whose action or a step uses the template."""
    return [
        p
        for p in Plan.select().where(
            (Plan.store == template.store_id) & (Plan.status != "archived")
        )
        if template.id in _template_ids(p)
    ]


def _active_plans(template: MessageTemplate) -> list[Plan]:
    return [p for p in usage(template) if p.status == "active"]


def _template_ids(plan: Plan) -> set[int]:
    ids = set()
    for action in [plan.action or {}] + [(s or {}).get("action") or {} for s in plan.steps or []]:
        raw = action.get("message_template")
        if str(raw or "").isdigit():
            ids.add(int(raw))
    return ids


# ---------------------------------------------------------------- editing


def save_template(
    store: Store,
    data: dict,
    now: datetime,
    staff: Staff | None = None,
    template: MessageTemplate | None = None,
) -> MessageTemplate:
    """Create or edit a template; a changed WhatsApp body or language needs approval again,
    and plans using the template pick the new text up as a new plan version."""
    errors = Errors()
    name = str(data.get("name") or "").strip()
    if not name or len(name) > 120:
        errors.add("name", "a template needs a name (at most 120 characters)")
    elif (
        MessageTemplate.select()
        .where(
            (MessageTemplate.store == store.id)
            & (MessageTemplate.name == name)
            & (MessageTemplate.id != (template.id if template else 0))
        )
        .exists()
    ):
        errors.add("name", "another template already has this name")
    channel = str(data.get("channel") or "")
    if channel and channel not in CHANNELS:
        errors.add("channel", "must be one of " + ", ".join(CHANNELS))
    wa_name = str(data.get("wa_name") or "").strip()
    if channel == "whatsapp" and not wa_name:
        errors.add("wa_name", "a WhatsApp template needs the template name registered at Meta")
    if wa_name and not WA_NAME.match(wa_name):
        errors.add("wa_name", "lower-case letters, digits and underscores only")
    if channel not in ("", "whatsapp"):
        wa_name = ""
    given = data.get("variants") or {}
    bodies: dict[str, tuple[str, str]] = {}
    for locale in LOCALES:
        raw = given.get(locale) or {}
        body = str(raw.get("body") or "").strip()
        if not body:
            continue
        if len(body) > 1024:
            errors.add(f"variants.{locale}.body", "at most 1024 characters")
        unknown = scripts.unknown_variables(body)
        if unknown:
            errors.add(
                f"variants.{locale}.body",
                "unknown variables: " + ", ".join("{" + u + "}" for u in unknown),
            )
        language = str(raw.get("wa_language") or "").strip() or WA_LANGUAGES[locale]
        if wa_name and not WA_LANGUAGE.match(language):
            errors.add(f"variants.{locale}.wa_language", "a language code such as en or zh_CN")
        bodies[locale] = (body, language if wa_name else "")
    if not bodies:
        errors.add("variants", "write the message in at least one language")
    errors.raise_if_any()
    created = template is None
    if created:
        template = MessageTemplate.create(
            store=store.id, name=name, channel=channel, wa_name=wa_name, created_at=now,
            updated_at=now, updated_by=getattr(staff, "id", staff),
        )  # fmt: skip
        old: dict[str, MessageTemplateVariant] = {}
        renamed = meta_changed = False
    else:
        old = variants_of(template)
        renamed = template.wa_name != wa_name
        reworded = renamed or set(old) != set(bodies)
        reworded = reworded or any(
            (old[loc].body, old[loc].wa_language) != pair
            for loc, pair in bodies.items()
            if loc in old
        )
        if (template.wa_name or wa_name) and reworded and _active_plans(template):
            raise ValidationError(
                "active plans send this WhatsApp template and Meta must approve every change: "
                "pause them first, or make a new template",
                field="variants",
            )
        meta_changed = (template.name, template.channel) != (name, channel) or renamed
        template.name, template.channel, template.wa_name = name, channel, wa_name
        template.updated_at, template.updated_by = now, getattr(staff, "id", staff)
        template.save()
    changed_locales = []
    for locale, (body, language) in bodies.items():
        row = old.pop(locale, None)
        if row is None:
            row = MessageTemplateVariant(template=template.id, locale=locale)
        elif row.body == body and row.wa_language == language and not renamed:
            continue
        row.body, row.wa_language = body, language
        row.wa_status = "pending" if wa_name else ""
        row.wa_reason, row.wa_checked_at = "", None
        row.save()
        changed_locales.append(locale)
    for row in old.values():
        row.delete_instance()
        changed_locales.append(row.locale)
    if created or changed_locales or meta_changed:
        audit.record(
            staff,
            store,
            "message_template.created" if created else "message_template.updated",
            "message_template",
            template.id,
            {"name": name, "channel": channel, "wa_name": wa_name, "languages": changed_locales},
            now,
        )
    if not created and changed_locales:
        _refresh_plans(template, now, staff)
    return template


def _refresh_plans(template: MessageTemplate, now: datetime, staff: Staff | None) -> None:
    """Plans using the template take its new text (a new plan version each)."""
    from app.services import plans

    for plan in usage(template):
        if (plan.action or {}).get("message_template") is not None:
            plans.update_plan(
                plan,
                {"action": {"message_template": template.id}},
                now,
                staff=getattr(staff, "id", staff),
            )


def delete_template(template: MessageTemplate, now: datetime, staff: Staff | None = None) -> None:
    """Delete a template that no plan uses."""
    if usage(template):
        raise ValidationError("plans still use this template; change them first", field="")
    audit.record(
        staff,
        template.store_id,
        "message_template.deleted",
        "message_template",
        template.id,
        {"name": template.name},
        now,
    )
    template.delete_instance(recursive=True)


# ---------------------------------------------------------------- plans using templates


def resolve_action(store_id: int, action: dict, errors: Errors, field: str = "action") -> dict:
    """Fill a plan action's script (per language) and WhatsApp template from the chosen
    message template, so the plan's version records exactly the text it sends."""
    raw = action.get("message_template")
    if raw in (None, "", 0):
        action.pop("message_template", None)
        if "template_languages" in action:
            action.pop("template_languages", None)
            action.pop("template_name", None)
        return action
    template = None
    if str(raw).isdigit():
        template = MessageTemplate.get_or_none(
            (MessageTemplate.id == int(raw)) & (MessageTemplate.store == store_id)
        )
    if template is None:
        errors.add(f"{field}.message_template", "no such message template in this store")
        return action
    variants = variants_of(template)
    action["message_template"] = template.id
    action["script"] = {loc: v.body for loc, v in variants.items()}
    action["scripts"] = []
    if template.channel and not action.get("channel"):
        action["channel"] = template.channel
    if is_whatsapp(template):
        action["template_name"] = template.wa_name
        action["template_languages"] = {loc: v.wa_language for loc, v in variants.items()}
    else:
        action.pop("template_name", None)
        action.pop("template_languages", None)
    return action


def activation_errors(plan: Plan) -> list[dict]:
    """Why a plan cannot be switched on: a WhatsApp template it sends is not approved."""
    errors = []
    actions = [("action", plan.action or {})]
    for i, step in enumerate(plan.steps or []):
        if (step or {}).get("action"):
            actions.append((f"steps.{i}.action", {**(plan.action or {}), **step["action"]}))
    for field, action in actions:
        raw = action.get("message_template")
        if action.get("kind") != "message" or raw in (None, ""):
            continue
        if action.get("channel") not in (None, "", "whatsapp"):
            continue
        template = MessageTemplate.get_or_none(
            (MessageTemplate.id == int(raw)) & (MessageTemplate.store == plan.store_id)
        )
        if template is None:
            errors.append(
                {"field": f"{field}.message_template", "message": "the message template is gone"}
            )
            continue
        if not is_whatsapp(template):
            continue
        variants = variants_of(template)
        status = approval(template, variants)
        if status == "approved":
            continue
        waiting = [
            f"{v.wa_language}: {v.wa_status or 'pending'}"
            + (f" ({v.wa_reason})" if v.wa_reason else "")
            for v in variants.values()
            if v.wa_status != "approved"
        ]
        errors.append(
            {
                "field": f"{field}.message_template",
                "message": f"the WhatsApp template {template.wa_name!r} is not approved by Meta "
                f"yet — {', '.join(waiting)}",
            }
        )
    return errors


def pick_locale(keys, locale: str, store_locale: str) -> str | None:
    """The variant a customer gets: theirs, the store's, their base language, English, any
    (the same order the engine picks scripts in)."""
    keys = list(keys)
    for key in (locale, store_locale, (locale or "").split("_")[0], "en"):
        if key and key in keys:
            return key
    return keys[0] if keys else None


def body_parameters(script: str, body: str) -> list[str] | None:
    """The variables' values in a rendered body, in order (None when the body does not match)."""
    pattern, names = [], 0
    for part in scripts.compile_script(script or ""):
        if isinstance(part, tuple):
            pattern.append("(.*?)")
            names += 1
        else:
            pattern.append(re.escape(part))
    match = re.fullmatch("".join(pattern), body or "", flags=re.DOTALL)
    if match is None:
        return None
    return list(match.groups())


def whatsapp_payload_template(action: dict, locale: str, store_locale: str, body: str) -> dict:
    """The adapter's `template` for a plan message: Meta's name, the language of the variant
    the customer got, and the body parameters taken from the rendered text."""
    out = {}
    if action.get("template_name"):
        out["name"] = action["template_name"]
    languages = action.get("template_languages") or {}
    script = action.get("script")
    if languages and isinstance(script, dict):
        chosen = pick_locale(script.keys(), locale, store_locale)
        if chosen in languages:
            out["language"] = languages[chosen]
        params = body_parameters(script.get(chosen, ""), body)
        if params is not None:
            out["parameters"] = params
    elif action.get("template_language"):
        out["language"] = action["template_language"]
    return out


def outgoing_template(message, customer: Customer, store: Store) -> dict:
    """The WhatsApp `template` of a plan's message, from the plan version that queued it."""
    plan = Plan.get_or_none(Plan.id == message.plan_id)
    if plan is None:
        return {}
    locale = customer.locale or store.locale
    out = whatsapp_payload_template(plan.action or {}, locale, store.locale, message.body)
    if (plan.action or {}).get("template_languages") and "parameters" not in out:
        occ = Occurrence.get_or_none(Occurrence.id == message.occurrence_id)
        if occ is not None and occ.version != plan.version:
            from app.services import engine

            action = engine.step_action(engine.config(plan, occ.version), occ.step)
            out = whatsapp_payload_template(action, locale, store.locale, message.body)
    return out


def meta_body(body: str) -> str:
    """The body as it is submitted to Meta: each variable becomes {{1}}, {{2}} …"""
    out, n = [], 0
    for part in scripts.compile_script(body or ""):
        if isinstance(part, tuple):
            n += 1
            out.append("{{" + str(n) + "}}")
        else:
            out.append(part)
    return "".join(out)


def preview(template: MessageTemplate, customer: Customer, store: Store, now: datetime) -> dict:
    """Every language of the template rendered for one real customer, with the variables
    that would be empty, and which language that customer would get."""
    card = (
        CustomerCard.select()
        .where((CustomerCard.customer == customer.id) & (CustomerCard.status == "active"))
        .order_by(CustomerCard.expires_on.asc(nulls="LAST"), CustomerCard.id)
        .first()
    )
    plan = next(iter(usage(template)), None)  # e.g. the member day a plan's params name
    context = scripts.context_for(customer, store, plan=plan, card=card, now=now)
    variants = variants_of(template)
    rows = []
    for locale, v in variants.items():
        rows.append(
            {
                "locale": locale,
                "text": scripts.render(v.body, context, locale),
                "missing": scripts.missing_variables(v.body, context),
            }
        )
    chosen = pick_locale(variants.keys(), customer.locale or store.locale, store.locale)
    return {"rows": rows, "chosen": chosen}


# ---------------------------------------------------------------- WhatsApp approval status


def _whatsapp_credentials(store_id: int) -> tuple[dict, dict] | None:
    setting = ChannelSetting.get_or_none(
        (ChannelSetting.store == store_id) & (ChannelSetting.channel == "whatsapp")
    )
    if setting is None:
        return None
    return setting.config or {}, secrets_box.decrypt(setting.secret)


def refresh_status(template: MessageTemplate, now: datetime, staff: Staff | None = None) -> dict:
    """Ask the Graph API for the template's status per language
    (GET /{WABA-ID}/message_templates?name=…) and store it; answers what changed."""
    if not is_whatsapp(template):
        raise ValidationError("this is not a WhatsApp template", field="wa_name")
    creds = _whatsapp_credentials(template.store_id)
    config, secret = creds or ({}, {})
    waba = str(config.get("waba_id") or "").strip()
    if not waba or not secret.get("access_token"):
        raise ValidationError(
            "set the WhatsApp Business Account ID and access token in the channel settings first",
            field="waba_id",
        )
    base = (config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
    version = str(config.get("api_version") or DEFAULT_VERSION).lstrip("v")
    query = urlencode(
        {"name": template.wa_name, "fields": "name,language,status,rejected_reason", "limit": 100}
    )
    url = f"{base}/v{version}/{waba}/message_templates?{query}"
    found: dict[str, dict] = {}
    for _page in range(20):
        try:
            status, _headers, body = http_json(
                "GET",
                url,
                None,
                {"Authorization": f"Bearer {secret['access_token']}"},
                float(config.get("timeout", 10)),
            )
        except ChannelError as exc:
            raise ValidationError(f"WhatsApp did not answer: {exc}", field="") from exc
        if status != 200:
            error = body.get("error") or {}
            raise ValidationError(
                f"WhatsApp answered {status}: {error.get('message') or 'error'}", field=""
            )
        for item in body.get("data") or []:
            if item.get("name") == template.wa_name and item.get("language"):
                found[item["language"]] = item
        url = (body.get("paging") or {}).get("next")
        if not url:
            break
    changes = {}
    for locale, v in variants_of(template).items():
        item = found.get(v.wa_language)
        if item is None:
            new, reason = "pending", "not found at Meta"
        else:
            new = META_STATUS.get(str(item.get("status", "")).upper(), "pending")
            reason = str(item.get("rejected_reason") or "")
            if reason.upper() == "NONE" or new != "rejected":
                reason = ""
        if (new, reason) != (v.wa_status, v.wa_reason):
            changes[locale] = {"from": v.wa_status, "to": new, "reason": reason}
        v.wa_status, v.wa_reason, v.wa_checked_at = new, reason[:300], now
        v.save()
    if changes:
        audit.record(
            staff,
            template.store_id,
            "message_template.status",
            "message_template",
            template.id,
            changes,
            now,
        )
    return changes


def refresh_pending(now: datetime) -> dict[int, dict]:
    """Check with WhatsApp every template that still waits for Meta in a store whose channel
    names its Business Account; answers the changes per template (errors are logged)."""
    pending = (
        MessageTemplate.select()
        .join(MessageTemplateVariant)
        .where(
            (MessageTemplate.wa_name != "")
            & (MessageTemplate.channel.in_(("", "whatsapp")))
            & (MessageTemplateVariant.wa_status == "pending")
        )
        .distinct()
    )
    changes = {}
    for template in pending:
        config, secret = _whatsapp_credentials(template.store_id) or ({}, {})
        if not config.get("waba_id") or not secret.get("access_token"):
            continue
        try:
            changed = refresh_status(template, now)
        except ValidationError as exc:
            log.warning("template %s status check failed: %s", template.id, exc)
            continue
        if changed:
            changes[template.id] = changed
    return changes


def handle_status_webhook(store: Store, value: dict, now: datetime) -> int:
    """Apply a `message_template_status_update` webhook value (event, message_template_name,
    message_template_language, reason) to the store's templates; answers rows changed.

    Called by the WhatsApp webhook route for changes whose field is
    `message_template_status_update`."""
    name = str(value.get("message_template_name") or "")
    language = str(value.get("message_template_language") or "")
    event = str(value.get("event") or "").upper()
    if not name or not language:
        return 0
    status = META_STATUS.get(event)
    if status is None:
        # PAUSED, DISABLED, FLAGGED … mean the template cannot be sent: treat as not approved.
        status = "rejected" if event in ("DISABLED", "PAUSED", "FLAGGED") else ""
    if not status:
        return 0
    reason = str(value.get("reason") or "")
    if reason.upper() == "NONE" or status != "rejected":
        reason = ""
    if status == "rejected" and not reason and event != "REJECTED":
        reason = event.lower()
    query = (
        MessageTemplateVariant.select(MessageTemplateVariant, MessageTemplate)
        .join(MessageTemplate)
        .where(
            (MessageTemplate.store == store.id)
            & (MessageTemplate.wa_name == name)
            & (MessageTemplateVariant.wa_language == language)
        )
    )
    changed = 0
    for v in query:
        if (v.wa_status, v.wa_reason) == (status, reason[:300]):
            continue
        audit.record(
            None,
            store,
            "message_template.status",
            "message_template",
            v.template_id,
            {v.locale: {"from": v.wa_status, "to": status, "reason": reason, "via": "webhook"}},
            now,
        )
        v.wa_status, v.wa_reason, v.wa_checked_at = status, reason[:300], now
        v.save()
        changed += 1
    return changed
