"""Plans for managers: list, template gallery, the step form with its audience builder, detail."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app import clock
from app.htmx import redirect, render, trigger
from app.models import (
    CardProduct,
    Customer,
    CustomerCard,
    MessageTemplate,
    Occurrence,
    Plan,
    PlanVersion,
    Segment,
    Staff,
    StaffStore,
    Store,
    Tag,
)
from app.models.events import EVENT_TYPES
from app.services import (
    assignment,
    engine,
    message_templates,
    messaging,
    permissions,
    scripts,
    templates,
)
from app.services import audience as audience_service
from app.services import plans as service
from app.services.validation import ValidationError

bp = Blueprint("plans", __name__)

TYPE_LABELS = {
    "one_off": _l("One-off"),
    "behaviour": _l("Behaviour-triggered"),
    "recurring": _l("Recurring"),
}
STATUS_LABELS = {
    "draft": _l("Draft"),
    "active": _l("Active"),
    "paused": _l("Paused"),
    "archived": _l("Archived"),
}
OP_LABELS = {
    "eq": _l("is"),
    "ne": _l("is not"),
    "in": _l("is one of"),
    "not_in": _l("is none of"),
    "gt": _l("more than"),
    "gte": _l("at least"),
    "lt": _l("less than"),
    "lte": _l("at most"),
    "between": _l("between"),
    "is_set": _l("is set"),
    "is_not_set": _l("is not set"),
    "has_any": _l("has any of"),
    "has_all": _l("has all of"),
    "has_none": _l("has none of"),
    "in_last_days": _l("in the last … days"),
    "not_in_last_days": _l("not in the last … days"),
    "in_next_days": _l("in the next … days"),
    "this_month": _l("this month"),
}
ASSIGNEE_RULE_LABELS = {
    "default": _l("Assigned staff, else who served last, else in turn"),
    "last_served": _l("Who served last first"),
    "round_robin": _l("In turn (round-robin)"),
    "staff": _l("A fixed staff member"),
    "manager_queue": _l("Manager's queue"),
}
EVENT_LABELS = {
    "purchase": _l("Purchase"),
    "service_completed": _l("Service completed"),
    "card_used": _l("Card used"),
    "appointment_booked": _l("Appointment booked"),
    "appointment_cancelled": _l("Appointment cancelled"),
    "visit": _l("Visit"),
}
CHANNEL_LABELS = {
    "whatsapp": "WhatsApp",
    "line": "LINE",
    "sms": "SMS",
    "email": _l("Email"),
    "webhook": _l("Webhook"),
}
FREQUENCIES = {
    "daily": _l("Every day"),
    "weekly": _l("Weekly, on chosen weekdays"),
    "monthly": _l("Monthly, on day …"),
    "last_day": _l("Monthly, on the last day"),
}
WEEKDAY_LABELS = {
    "MO": _l("Mon"),
    "TU": _l("Tue"),
    "WE": _l("Wed"),
    "TH": _l("Thu"),
    "FR": _l("Fri"),
    "SA": _l("Sat"),
    "SU": _l("Sun"),
}
OUTCOME_LABELS = {
    "followup": _l("Follow-up created"),
    "message": _l("Message queued"),
    "held_out": _l("Held out"),
    "skipped": _l("Skipped"),
    "deferred": _l("Deferred"),
    "withdrawn": _l("Withdrawn"),
    "pending": _l("Pending"),
}
OCCURRENCE_LABELS = {
    "pending": _l("Pending"),
    "running": _l("Running"),
    "done": _l("Done"),
    "missed": _l("Missed"),
}
APPROVAL_LABELS = {
    "pending": _l("Waiting for Meta's approval"),
    "approved": _l("Approved by Meta"),
    "rejected": _l("Rejected by Meta"),
}
PARAM_LABELS = {
    "day_of_month": _l("Day of the month"),
    "remind_days_before": _l("Remind … days before"),
    "at": _l("At (store time)"),
    "days_after": _l("Days after"),
    "products": _l("Only these products (SKUs, comma-separated; empty = all)"),
    "every_days": _l("Every … days"),
    "days_before": _l("Days before"),
    "remaining_uses_at_most": _l("Remaining uses at most"),
    "balance_at_most": _l("Balance at most"),
    "days_after_last_visit": _l("Days after the last visit"),
    "promo_days_after_last_visit": _l("Promo: days after the last visit"),
}
_NODE = re.compile(r"^a\.(r(?:\.x?\d+)*)\.(mode|field|key|op|value|value2|days)$")
_CHILD = re.compile(r"^\.(x?)(\d+)$")
_LEAF_PARTS = (".field", ".op", ".value", ".days")


# ---------------------------------------------------------------- access


def _plan_or_404(plan_id: int) -> Plan:
    """A plan of one of the viewer's stores, or 404."""
    plan = Plan.get_or_none(Plan.id == plan_id)
    if plan is None or plan.store_id not in permissions.store_ids(current_user):
        abort(404)
    return plan


def _form_store() -> tuple[Store, Plan | None]:
    """The store (and plan, when editing) a builder post is about."""
    plan_id = request.form.get("plan_id", "")
    if plan_id.isdigit():
        plan = _plan_or_404(int(plan_id))
        return Store.get_by_id(plan.store_id), plan
    if g.store is None:
        abort(404)
    return g.store, None


# ---------------------------------------------------------------- the audience tree of the form


def _empty_cond() -> dict:
    return {"kind": "cond", "field": "", "key": "", "op": "", "value": "", "value2": "", "days": ""}


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def tree_from_audience(audience: dict | None) -> dict:
    """The builder's tree for an AUDIENCE (groups with mode, items and except lists)."""
    node = {"kind": "group", "mode": "all", "items": [], "except": []}
    if not audience:
        return node
    node["mode"] = "any" if "any" in audience else "all"
    for item in audience.get(node["mode"]) or []:
        node["items"].append(_item_from_audience(item))
    for item in audience.get("except") or []:
        node["except"].append(_item_from_audience(item))
    return node


def _item_from_audience(item: dict) -> dict:
    if isinstance(item, dict) and "field" not in item:
        return tree_from_audience(item)
    cond = _empty_cond()
    name = str(item.get("field", ""))
    if name.startswith("attributes."):
        cond["field"], cond["key"] = "attributes.<key>", name[len("attributes.") :]
    else:
        cond["field"] = name
    cond["op"] = item.get("op", "")
    value = item.get("value")
    if cond["op"] == "between" and isinstance(value, list) and len(value) == 2:
        cond["value"], cond["value2"] = _as_text(value[0]), _as_text(value[1])
    else:
        cond["value"] = _as_text(value)
    cond["days"] = _as_text(item.get("days"))
    return cond


def tree_from_form(form) -> dict:
    """Rebuild the builder's tree from the posted inputs (names a.<path>.<part>)."""
    nodes: dict[str, dict] = {}
    for name in form:
        match = _NODE.match(name)
        if match:
            nodes.setdefault(match[1], {})[match[2]] = form.get(name, "").strip()
    if "r" not in nodes:
        nodes["r"] = {"mode": "all"}
    return _build(nodes, "r")


def _build(nodes: dict, path: str) -> dict:
    attrs = nodes.get(path, {})
    if "mode" in attrs:
        node = {"kind": "group", "mode": attrs["mode"], "items": [], "except": []}
        if node["mode"] not in ("all", "any"):
            node["mode"] = "all"
        children = []
        for other in nodes:
            if other.startswith(path + "."):
                match = _CHILD.match(other[len(path) :])
                if match:
                    children.append((match[1] == "x", int(match[2]), other))
        for is_except, _, child in sorted(children):
            node["except" if is_except else "items"].append(_build(nodes, child))
        return node
    cond = _empty_cond()
    cond.update({k: v for k, v in attrs.items() if k in cond})
    return cond


def _locate(tree: dict, path: str) -> tuple[list | None, int, dict | None]:
    """(parent list, index, node) of the node at a builder path."""
    node, parent, index = tree, None, 0
    for part in path.split(".")[1:]:
        match = _CHILD.match("." + part)
        if not match or node.get("kind") != "group":
            return None, 0, None
        parent = node["except" if match[1] == "x" else "items"]
        index = int(match[2])
        if index >= len(parent):
            return None, 0, None
        node = parent[index]
    return parent, index, node


def apply_builder(tree: dict, action: str) -> dict:
    """Apply an add / add group / add except / remove button to the tree."""
    verb, _, path = action.partition(":")
    parent, index, node = _locate(tree, path or "r")
    if node is None:
        return tree
    if verb == "remove" and parent is not None:
        parent.pop(index)
    elif verb == "add" and node["kind"] == "group":
        node["items"].append(_empty_cond())
    elif verb == "group" and node["kind"] == "group":
        node["items"].append(
            {"kind": "group", "mode": "any", "items": [_empty_cond()], "except": []}
        )
    elif verb == "except" and node["kind"] == "group":
        node["except"].append(_empty_cond())
    return tree


def _number(raw: str):
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if re.fullmatch(r"-?\d+\.\d+", raw):
        return float(raw)
    return raw


def _cond_json(cond: dict, skip_incomplete: bool = False) -> dict | None:
    name = cond["field"]
    if not name:
        return None
    if skip_incomplete and _incomplete(cond):
        return None
    if name == "attributes.<key>":
        name = "attributes." + cond["key"]
    spec = audience_service.field_spec(name)
    op = cond["op"] or (spec.ops[0] if spec else "")
    out = {"field": name, "op": op}
    if spec is None:
        return out
    raw, raw2 = cond["value"], cond["value2"]
    if op in audience_service.NO_VALUE_OPS:
        pass
    elif op in audience_service.DAY_OPS:
        out["value"] = _number(raw)
    elif spec.type == "birthday":
        out["value"] = raw
    elif op in audience_service.LIST_OPS:
        items = [v.strip() for v in raw.split(",") if v.strip()]
        out["value"] = [_number(v) for v in items] if spec.type in ("integer", "number") else items
    elif op == "between":
        out["value"] = [_scalar(spec, raw), _scalar(spec, raw2)]
    else:
        out["value"] = _scalar(spec, raw)
    if spec.period and cond["days"]:
        out["days"] = _number(cond["days"])
    return out


def _incomplete(cond: dict) -> bool:
    """A condition still being typed: its operator needs a value and none is given yet."""
    op = cond["op"]
    if op in audience_service.NO_VALUE_OPS:
        return False
    if cond["field"] == "attributes.<key>" and not cond["key"]:
        return True
    return not cond["value"] or (op == "between" and not cond["value2"])


def _scalar(spec, raw: str):
    if spec.type in ("integer", "age", "number"):
        return _number(raw)
    return raw


def audience_from_tree(tree: dict, skip_incomplete: bool = False) -> tuple[dict | None, dict]:
    """(AUDIENCE or None for everyone, {audience error path: builder path}); while editing
    live, conditions still waiting for a value are left out instead of reported."""
    paths: dict[str, str] = {}
    result = _group_json(tree, "r", "audience", paths, skip_incomplete)
    return result, paths


def _group_json(
    node: dict, path: str, json_path: str, paths: dict, skip_incomplete: bool = False
) -> dict | None:
    paths[json_path] = path
    out: dict = {}
    for key, prefix, source in (
        (node["mode"], "", node["items"]),
        ("except", "x", node["except"]),
    ):
        items = []
        for i, child in enumerate(source):
            child_path = f"{path}.{prefix}{i}"
            child_json = f"{json_path}.{key}[{len(items)}]"
            if child["kind"] == "group":
                converted = _group_json(child, child_path, child_json, paths, skip_incomplete)
            else:
                converted = _cond_json(child, skip_incomplete)
                if converted is not None:
                    paths[child_json] = child_path
            if converted is not None:
                items.append(converted)
        if items:
            out[key] = items
    if not out:
        return None
    if node["mode"] not in out:
        out[node["mode"]] = []
    return out


def _audience_errors(errors: list[dict], paths: dict) -> tuple[dict, list[str]]:
    """Builder-path → messages, and messages that belong to no single input."""
    by_path: dict[str, list] = {}
    loose: list[str] = []
    for err in errors:
        field = err.get("field") or ""
        node = field
        for part in _LEAF_PARTS:
            if node.endswith(part):
                node = node[: -len(part)]
                break
        if node in paths and node != "audience":
            by_path.setdefault(paths[node], []).append(err["message"])
        else:
            loose.append(err["message"])
    return by_path, loose


# ---------------------------------------------------------------- the plan form


def _pick_text(script, store: Store) -> str:
    return engine._pick_script(script, store.locale, store.locale) if script else ""


def form_from_plan(plan: Plan | None, tpl, store: Store) -> dict:
    """The form's values for a new plan from a template / from scratch, or an existing plan."""
    if plan is None:
        action = dict(tpl.action) if tpl else {"kind": "followup", "due_in_hours": 8}
        params = templates.defaults(tpl) if tpl else {}
        form = {
            "name": str(tpl.name) if tpl else "",
            "type": tpl.type if tpl else "recurring",
            "params": {k: _as_text(v) for k, v in params.items()},
            "frequency": "daily",
            "weekdays": [],
            "day_of_month": "1",
            "at": "10:00",
            "schedule_at": "",
            "events": [],
            "products": "",
            "delay_days": "3",
            "trigger_at": "09:00",
            "action_kind": action.get("kind", "followup"),
            "channel": action.get("channel") or "",
            "due_in_hours": _as_text(action.get("due_in_hours", 8)),
            **_assignee_values(action, store),
            "script": "",
            "script_b": "",
            "ab": False,
            "message_template": "",
            "holdout_percent": _as_text(store.setting("default_holdout", 0) or 0),
            "window_days": "30",
            "backfill": True,
        }
        return form
    action = plan.action or {}
    variants = {s.get("variant"): s.get("text", "") for s in action.get("scripts") or []}
    sched = plan.schedule or {}
    rule = sched.get("rrule", "")
    frequency, weekdays, day = "daily", [], "1"
    if "FREQ=WEEKLY" in rule:
        frequency = "weekly"
        weekdays = (re.search(r"BYDAY=([A-Z,]+)", rule) or [None, ""])[1].split(",")
    elif "BYMONTHDAY=-1" in rule:
        frequency = "last_day"
    elif "FREQ=MONTHLY" in rule:
        frequency = "monthly"
        day = (re.search(r"BYMONTHDAY=(\d+)", rule) or [None, "1"])[1]
    trig = plan.trigger or {}
    events = trig.get("event") or []
    at = sched.get("at")
    one_off = ""
    if plan.type == "one_off" and at:
        one_off = (datetime.fromisoformat(at).astimezone(ZoneInfo(store.timezone))).strftime(
            "%Y-%m-%dT%H:%M"
        )
    return {
        "name": plan.name,
        "type": plan.type,
        "params": {k: _as_text(v) for k, v in (plan.params or {}).items()},
        "frequency": frequency,
        "weekdays": weekdays,
        "day_of_month": day,
        "at": at if plan.type == "recurring" and at else "10:00",
        "schedule_at": one_off,
        "events": [events] if isinstance(events, str) else list(events),
        "products": ", ".join(trig.get("products") or []),
        "delay_days": _as_text(trig.get("delay_days", 0)),
        "trigger_at": trig.get("at", "09:00"),
        "action_kind": action.get("kind", "followup"),
        "channel": action.get("channel") or "",
        "due_in_hours": _as_text(action.get("due_in_hours", 8)),
        **_assignee_values(action, store),
        "script": variants.get("A") or _pick_text(action.get("script"), store),
        "script_b": variants.get("B", ""),
        "ab": bool(variants),
        "message_template": _as_text(action.get("message_template") or ""),
        "holdout_percent": _as_text(plan.holdout_percent or 0),
        "window_days": _as_text(plan.window_days),
        "backfill": plan.backfill,
    }


def _assignee_values(action: dict, store: Store) -> dict:
    """The rule select's value and the fixed staff member's id for the form."""
    rule, staff = assignment.rule_of(action)
    if rule == "assigned":
        rule = "default"
    fixed = service.store_staff_id(store, staff) if rule == "staff" else None
    return {"assignee_rule": rule, "assignee": _as_text(fixed or "")}


def form_from_request(form, tpl) -> dict:
    """The form's values as posted (re-rendered on errors and builder clicks)."""
    values = {
        key: form.get(key, "").strip()
        for key in (
            "name",
            "type",
            "frequency",
            "day_of_month",
            "at",
            "schedule_at",
            "products",
            "delay_days",
            "trigger_at",
            "action_kind",
            "channel",
            "due_in_hours",
            "assignee_rule",
            "assignee",
            "script",
            "script_b",
            "message_template",
            "holdout_percent",
            "window_days",
        )
    }
    values["script"] = form.get("script", "")
    values["script_b"] = form.get("script_b", "")
    values["weekdays"] = form.getlist("weekdays")
    values["events"] = form.getlist("events")
    values["ab"] = form.get("ab") == "1"
    values["backfill"] = form.get("backfill", "1") == "1"
    values["params"] = {
        p.name: form.get(f"params.{p.name}", "").strip() for p in (tpl.params if tpl else ())
    }
    return values


def plan_body(
    values: dict, tpl, tree: dict, plan: Plan | None, store: Store, live: bool = False
) -> dict:
    """The plans service body (POST /plans shape) from the form's values."""
    data: dict = {"name": values["name"]}
    if tpl:
        data["template"] = tpl.key
        params = {}
        for p in tpl.params:
            raw = values["params"].get(p.name, "")
            if p.type == "skus":
                params[p.name] = [s.strip() for s in raw.split(",") if s.strip()]
            elif raw != "":
                params[p.name] = raw
        data["params"] = params
    else:
        data["type"] = values["type"]
        if values["type"] == "one_off":
            data["schedule"] = {"at": values["schedule_at"] or None}
        elif values["type"] == "recurring":
            data["schedule"] = {
                "frequency": values["frequency"],
                "weekdays": values["weekdays"],
                "day_of_month": values["day_of_month"] or "1",
                "at": values["at"] or "10:00",
            }
        else:
            data["trigger"] = {
                "event": values["events"],
                "products": [s.strip() for s in values["products"].split(",") if s.strip()],
                "delay_days": values["delay_days"] or "0",
                "at": values["trigger_at"] or "09:00",
            }
    action: dict = {
        "kind": values["action_kind"],
        "channel": values["channel"] or None,
        "due_in_hours": values["due_in_hours"] or "8",
    }
    action.update(_assignee_body(values, plan, store))
    text_a, text_b = values["script"].strip(), values["script_b"].strip()
    if values["ab"]:
        action["scripts"] = [{"variant": "A", "text": text_a}, {"variant": "B", "text": text_b}]
        action["script"] = None
    else:
        action["scripts"] = []
        old = (plan.action or {}).get("script") if plan is not None else None
        # An unchanged multi-language script stays multi-language.
        keep = isinstance(old, dict) and text_a == _pick_text(old, store).strip()
        action["script"] = old if keep else (text_a or None)
    chosen = values.get("message_template", "")
    action["message_template"] = int(chosen) if chosen.isdigit() else None
    data["action"] = action
    data["audience"], _ = audience_from_tree(tree, skip_incomplete=live)
    data["holdout_percent"] = values["holdout_percent"] or "0"
    data["window_days"] = values["window_days"] or "30"
    return data


def _assignee_body(values: dict, plan: Plan | None, store: Store) -> dict:
    """The action's assignee keys from the form; an unchanged choice keeps its saved form."""
    rule = values.get("assignee_rule") or "default"
    chosen = values.get("assignee", "")
    if plan is not None and _assignee_values(plan.action or {}, store) == {
        "assignee_rule": rule,
        "assignee": chosen if rule == "staff" else "",
    }:
        return {}
    if rule != "staff":
        return {"assignee_rule": rule, "assignee": None}
    return {"assignee_rule": "staff", "assignee": int(chosen) if chosen.isdigit() else chosen}


def _store_staff(store: Store) -> list[Staff]:
    """The store's active staff, for the fixed-assignee select."""
    return list(
        Staff.select(Staff.id, Staff.name)
        .join(StaffStore, on=(StaffStore.staff == Staff.id))
        .where((StaffStore.store == store.id) & (Staff.active == True))  # noqa: E712
        .order_by(Staff.name, Staff.id)
    )


def _errors_by_field(errors: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for err in errors:
        out.setdefault(err.get("field") or "", []).append(err["message"])
    return out


def _builder_ctx(store: Store, tree: dict, plan: Plan | None, errors: list | None = None):
    audience, paths = audience_from_tree(tree, skip_incomplete=errors is None)
    problems = audience_service.validate(audience) if errors is None else errors
    by_path, loose = _audience_errors(problems, paths)
    return {
        "tree": tree,
        "fields": audience_service.fields_catalogue(),
        "op_labels": OP_LABELS,
        "no_value_ops": audience_service.NO_VALUE_OPS,
        "day_ops": audience_service.DAY_OPS,
        "builder_errors": by_path,
        "builder_loose": loose,
        "suggest": _suggestions(store),
        "plan": plan,
        "store": store,
    }


def _suggestions(store: Store) -> dict[str, list[str]]:
    """Datalist values for the builder: tags, segments, staff, card products, stores."""
    staff = (
        Staff.select(Staff.email)
        .join(StaffStore, on=(StaffStore.staff == Staff.id))
        .where(StaffStore.store == store.id)
    )
    return {
        "tags": [t for (t,) in Tag.select(Tag.name).where(Tag.store == store.id).tuples()],
        "segment": [
            k for (k,) in Segment.select(Segment.key).where(Segment.store == store.id).tuples()
        ],
        "assigned_staff": [e for (e,) in staff.tuples()],
        "cards.product": [
            s
            for (s,) in CardProduct.select(CardProduct.sku)
            .where(CardProduct.store == store.id)
            .tuples()
        ],
        "store": [k for (k,) in Store.select(Store.key).tuples()],
    }


def _form_ctx(store, plan, tpl, values, tree, errors=None):
    field_errors = _errors_by_field(errors or [])
    audience_errors = [e for e in errors or [] if (e.get("field") or "").startswith("audience")]
    ctx = _builder_ctx(store, tree, plan, audience_errors if errors is not None else None)
    audience, _paths = audience_from_tree(tree, skip_incomplete=True)
    invalid = bool(audience_service.validate(audience))
    ctx.update(
        count=None if invalid else service.audience_count(store, audience, clock.now()),
        qualifying=None,
        invalid=invalid,
        everyone=audience is None,
    )
    ctx.update(
        tpl=tpl,
        values=values,
        errors=field_errors,
        type_labels=TYPE_LABELS,
        event_types=EVENT_TYPES,
        event_labels=EVENT_LABELS,
        channels=service.CHANNELS,
        channel_labels=CHANNEL_LABELS,
        enabled_channels=messaging.enabled_channels(store.id),
        assignee_rule_labels=ASSIGNEE_RULE_LABELS,
        store_staff=_store_staff(store),
        frequencies=FREQUENCIES,
        weekday_labels=WEEKDAY_LABELS,
        param_labels=PARAM_LABELS,
        variables=scripts.VARIABLES,
        message_templates=[
            (t, message_templates.approval(t)) for t in message_templates.templates_of(store.id)
        ],
        approval_labels=APPROVAL_LABELS,
        default_script=_pick_text(tpl.scripts, store) if tpl else "",
        action_url=(
            url_for("plans.edit", plan_id=plan.id)
            if plan
            else url_for("plans.new", template=tpl.key if tpl else None)
        ),
        versions=(
            list(
                PlanVersion.select()
                .where(PlanVersion.plan == plan.id)
                .order_by(PlanVersion.version.desc())
            )
            if plan
            else []
        ),
    )
    return ctx


def _template_of(key: str | None):
    if not key:
        return None
    tpl = templates.TEMPLATES.get(key)
    if tpl is None:
        abort(404)
    return tpl


def _save(store: Store, plan: Plan | None, tpl):
    """Create or update from the posted form; builder clicks and errors re-render it."""
    values = form_from_request(request.form, tpl)
    tree = tree_from_form(request.form)
    action = request.form.get("builder")
    if action:
        tree = apply_builder(tree, action)
        ctx = _form_ctx(store, plan, tpl, values, tree)
        return render("plans/form.html", "plans/_form.html", **ctx)
    body = plan_body(values, tpl, tree, plan, store)
    now = clock.now()
    try:
        if plan is None:
            saved = service.create_plan(store, body, now, created_by=current_user.id)
            flash(_("Plan created as a draft. Check the preview, then switch it on."), "success")
        else:
            before = plan.version
            saved = service.update_plan(plan, body, now, staff=current_user.id)
            if saved.version != before:
                flash(_("Saved as version %(n)s.", n=saved.version), "success")
            else:
                flash(_("Nothing changed."), "success")
    except ValidationError as exc:
        ctx = _form_ctx(store, plan, tpl, values, tree, errors=exc.errors)
        return render("plans/form.html", "plans/_form.html", status=422, **ctx)
    return redirect(url_for("plans.show", plan_id=saved.id))


# ---------------------------------------------------------------- pages


@bp.route("/plans")
@permissions.manager_required
def index():
    """The current store's plans with their figures, and the template gallery."""
    if g.store is None:
        abort(404)
    plans = list(
        Plan.select()
        .where((Plan.store == g.store.id) & (Plan.status != "archived"))
        .order_by(Plan.status, Plan.name)
    )
    archived = Plan.select().where((Plan.store == g.store.id) & (Plan.status == "archived"))
    show_archived = request.args.get("archived") == "1"
    if show_archived:
        plans += list(archived.order_by(Plan.name))
    stats = service.list_stats([g.store.id], clock.now())
    return render(
        "plans/index.html",
        "plans/_list.html",
        plans=plans,
        stats=stats,
        archived_count=archived.count(),
        show_archived=show_archived,
        gallery=list(templates.TEMPLATES.values()),
        type_labels=TYPE_LABELS,
        status_labels=STATUS_LABELS,
    )


@bp.route("/plans/new", methods=["GET", "POST"])
@permissions.manager_required
def new():
    """The step form for a new plan, from a template (?template=key) or from scratch."""
    if g.store is None:
        abort(404)
    tpl = _template_of(request.values.get("template"))
    if request.method == "POST":
        return _save(g.store, None, tpl)
    values = form_from_plan(None, tpl, g.store)
    tree = tree_from_audience(tpl.audience if tpl else None)
    return render(
        "plans/form.html", "plans/_form.html", **_form_ctx(g.store, None, tpl, values, tree)
    )


@bp.route("/plans/<int:plan_id>/edit", methods=["GET", "POST"])
@permissions.manager_required
def edit(plan_id: int):
    """Edit a plan; a changed definition becomes a new version."""
    plan = _plan_or_404(plan_id)
    store = Store.get_by_id(plan.store_id)
    tpl = _template_of(plan.template)
    if request.method == "POST":
        return _save(store, plan, tpl)
    values = form_from_plan(plan, tpl, store)
    tree = tree_from_audience(plan.audience)
    return render(
        "plans/form.html", "plans/_form.html", **_form_ctx(store, plan, tpl, values, tree)
    )


@bp.route("/plans/audience", methods=["POST"])
@permissions.manager_required
def builder():
    """Re-render the audience builder after an add / remove / field change."""
    store, plan = _form_store()
    tree = tree_from_form(request.form)
    if request.form.get("builder"):
        tree = apply_builder(tree, request.form["builder"])
    resp = render("plans/builder.html", "plans/_builder.html", **_builder_ctx(store, tree, plan))
    return trigger(resp, "audienceChanged")


@bp.route("/plans/audience-count", methods=["POST"])
@permissions.manager_required
def audience_count():
    """How many customers the posted audience matches now (and qualify for the plan today)."""
    store, plan = _form_store()
    tree = tree_from_form(request.form)
    audience, _ = audience_from_tree(tree, skip_incomplete=True)
    errors = audience_service.validate(audience)
    now = clock.now()
    ctx = {
        "count": None,
        "qualifying": None,
        "invalid": bool(errors),
        "problems": [e["message"] for e in errors],
        "everyone": audience is None,
    }
    if not errors:
        ctx["count"] = service.audience_count(store, audience, now)
        tpl = _template_of(request.form.get("template") or (plan.template if plan else None))
        values = form_from_request(request.form, tpl)
        try:
            draft = service.draft_plan(
                store, plan_body(values, tpl, tree, plan, store, live=True), plan
            )
            ctx["qualifying"] = service.qualifying_now(draft, now)
        except ValidationError:
            ctx["qualifying"] = None
    return render("plans/count.html", "plans/_count.html", status=422 if errors else 200, **ctx)


@bp.route("/plans/preview", methods=["POST"])
@permissions.manager_required
def preview():
    """Who the posted plan would reach today (20 with their scripts) and the 14-day forecast."""
    store, plan = _form_store()
    tpl = _template_of(request.form.get("template") or (plan.template if plan else None))
    values = form_from_request(request.form, tpl)
    tree = tree_from_form(request.form)
    now = clock.now()
    try:
        draft = service.draft_plan(
            store, plan_body(values, tpl, tree, plan, store, live=True), plan
        )
    except ValidationError as exc:
        return render(
            "plans/preview.html",
            "plans/_preview.html",
            status=422,
            errors=exc.errors,
            rows=[],
            days=[],
            store=store,
        )
    return render(
        "plans/preview.html",
        "plans/_preview.html",
        errors=[],
        store=store,
        **_forecast(store, draft, now),
    )


def _card_of(customer: Customer):
    """The customer's active card that expires first (what card variables describe)."""
    return (
        CustomerCard.select()
        .where((CustomerCard.customer == customer.id) & (CustomerCard.status == "active"))
        .order_by(CustomerCard.expires_on.asc(nulls="LAST"), CustomerCard.id)
        .first()
    )


def _forecast(store: Store, draft: Plan, now) -> dict:
    cfg = engine.config(draft)
    action = engine.step_action(cfg, 0)
    source = engine._script_for(
        cfg, 0, action, None, "", templates.TEMPLATES.get(cfg.template or "")
    )
    if not source and action.get("scripts"):
        source = action["scripts"][0].get("text", "")
    rows = []
    for customer, _text in service.preview(draft, now):
        locale = customer.locale or store.locale
        script = engine._pick_script(source, locale, store.locale)
        context = scripts.context_for(customer, store, plan=draft, card=_card_of(customer), now=now)
        rows.append((customer, scripts.render(script, context, locale)))
    days = service.forecast(draft, now)
    prices = service.channel_prices(store)
    kind = (draft.action or {}).get("kind")
    channel = (draft.action or {}).get("channel")
    if kind != "message":
        price, price_note = None, "followup"
    elif channel:
        price, price_note = prices.get(channel), "channel"
    else:
        price, price_note = (max(prices.values()) if prices else None), "max"
    for day in days:
        day["cost"] = price * day["count"] if price is not None else None
    total = sum(d["count"] for d in days)
    return {
        "rows": rows,
        "days": days,
        "total": total,
        "total_cost": price * total if price is not None else None,
        "price_note": price_note,
        "kind": kind,
        "channel_labels": CHANNEL_LABELS,
        "channel_warning": service.channel_warning(draft),
    }


@bp.route("/plans/script-preview", methods=["POST"])
@permissions.manager_required
def script_preview():
    """The script(s) rendered for one real customer, with variables that would be empty."""
    store, plan = _form_store()
    tpl = _template_of(request.form.get("template") or (plan.template if plan else None))
    values = form_from_request(request.form, tpl)
    tree = tree_from_form(request.form)
    audience, _ = audience_from_tree(tree, skip_incomplete=True)
    now = clock.now()
    matches = []
    if not audience_service.validate(audience):
        matches = list(
            audience_service.customer_query(store.id, audience, now)
            .select(Customer.id, Customer.name)
            .order_by(Customer.id)
            .limit(10)
        )
    q = request.form.get("preview_q", "").strip()
    found = []
    if q:
        found = list(
            Customer.select(Customer.id, Customer.name)
            .where((Customer.store == store.id) & Customer.name.contains(q))
            .order_by(Customer.name)
            .limit(10)
        )
    chosen_id = request.form.get("preview_customer", "")
    customer = None
    if chosen_id.isdigit():
        customer = Customer.get_or_none(
            (Customer.id == int(chosen_id)) & (Customer.store == store.id)
        )
    if customer is None:
        first = (found or matches or [None])[0]
        customer = Customer.get_by_id(first.id) if first else None
    texts = {"A": values["script"] or (_pick_text(tpl.scripts, store) if tpl else "")}
    if values["ab"]:
        texts["B"] = values["script_b"]
    chosen_template = _message_template_of(store, values["message_template"])
    if chosen_template is not None and customer is not None:
        variants = message_templates.variants_of(chosen_template)
        picked = message_templates.pick_locale(
            variants.keys(), customer.locale or store.locale, store.locale
        )
        texts = {"A": variants[picked].body} if picked else texts
    rendered = []
    if customer is not None:
        card = _card_of(customer)
        context = scripts.context_for(
            customer, store, plan=plan, card=card, staff=current_user, now=now
        )
        locale = customer.locale or store.locale
        for variant, text in texts.items():
            rendered.append(
                {
                    "variant": variant,
                    "text": scripts.render(text, context, locale),
                    "missing": scripts.missing_variables(text, context),
                    "unknown": scripts.unknown_variables(text),
                }
            )
    return render(
        "plans/script_preview.html",
        "plans/_script_preview.html",
        customer=customer,
        matches=matches,
        found=found,
        q=q,
        rendered=rendered,
        ab=values["ab"],
    )


def _message_template_of(store: Store, raw: str):
    """The store's message template a form names, or None."""
    if not str(raw or "").isdigit():
        return None
    return MessageTemplate.get_or_none(
        (MessageTemplate.id == int(raw)) & (MessageTemplate.store == store.id)
    )


@bp.route("/plans/<int:plan_id>")
@permissions.manager_required
def show(plan_id: int):
    """A plan: summary, versions, occurrences, decisions and A/B figures."""
    plan = _plan_or_404(plan_id)
    store = Store.get_by_id(plan.store_id)
    occurrences = list(
        Occurrence.select()
        .where(Occurrence.plan == plan.id)
        .order_by(Occurrence.scheduled_for.desc(), Occurrence.id.desc())
        .limit(30)
    )
    missed = (
        Occurrence.select()
        .where((Occurrence.plan == plan.id) & (Occurrence.status == "missed"))
        .count()
    )
    versions = list(
        PlanVersion.select().where(PlanVersion.plan == plan.id).order_by(PlanVersion.version.desc())
    )
    stats = service.list_stats([store.id], clock.now()).get(plan.id)
    message_template = _message_template_of(store, (plan.action or {}).get("message_template"))
    return render(
        "plans/show.html",
        "plans/_show.html",
        plan=plan,
        store=store,
        message_template=message_template,
        approval=message_templates.approval(message_template) if message_template else "",
        approval_labels=APPROVAL_LABELS,
        blocked=message_templates.activation_errors(plan) if plan.status != "active" else [],
        channel_warning=service.channel_warning(plan),
        channel_labels=CHANNEL_LABELS,
        tpl=templates.TEMPLATES.get(plan.template or ""),
        occurrences=occurrences,
        missed=missed,
        versions=versions,
        decisions=service.decision_summary(plan),
        variants=service.variant_stats(plan),
        stats=stats,
        type_labels=TYPE_LABELS,
        status_labels=STATUS_LABELS,
        outcome_labels=OUTCOME_LABELS,
        occurrence_labels=OCCURRENCE_LABELS,
    )


@bp.route("/plans/<int:plan_id>/activate")
@permissions.manager_required
def activate(plan_id: int):
    """Before switching on: who already qualifies, and the back-fill choice."""
    plan = _plan_or_404(plan_id)
    return _activate_page(plan, message_templates.activation_errors(plan))


def _activate_page(plan: Plan, errors: list[dict], status: int = 200):
    store = Store.get_by_id(plan.store_id)
    now = clock.now()
    template = _message_template_of(store, (plan.action or {}).get("message_template"))
    return render(
        "plans/activate.html",
        "plans/_activate.html",
        status=status,
        plan=plan,
        store=store,
        qualifying=service.qualifying_now(plan, now),
        next_run=engine.next_firing(engine.config(plan), store.timezone, now),
        blocked=errors,
        channel_warning=service.channel_warning(plan),
        channel_labels=CHANNEL_LABELS,
        message_template=template,
        template_variants=message_templates.variants_of(template) if template else {},
        approval_labels=APPROVAL_LABELS,
    )


@bp.route("/plans/<int:plan_id>/status", methods=["POST"])
@permissions.manager_required
def set_status(plan_id: int):
    """Switch a plan on (with the back-fill choice), pause or archive it."""
    plan = _plan_or_404(plan_id)
    status = request.form.get("status", "")
    if status not in ("active", "paused", "archived", "draft"):
        abort(400)
    backfill = None
    if status == "active":
        backfill = request.form.get("backfill", "1") == "1"
    try:
        service.set_status(plan, status, clock.now(), backfill=backfill, staff=current_user.id)
    except ValidationError as exc:
        return _activate_page(Plan.get_by_id(plan.id), exc.errors, status=422)
    messages = {
        "active": _("Plan switched on."),
        "paused": _("Plan paused."),
        "archived": _("Plan archived."),
        "draft": _("Plan moved back to draft."),
    }
    flash(messages[status], "success")
    target = request.form.get("next", "")
    if target != "list":
        return redirect(url_for("plans.show", plan_id=plan.id))
    return redirect(url_for("plans.index"))
