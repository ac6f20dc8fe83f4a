"""Tags: dimensions and colours, bulk add/remove on filtered lists, rules and tag health."""

import json

from flask import Blueprint, abort, g, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app import clock
from app.htmx import redirect, render
from app.models import Customer, Tag, TagRule
from app.services import audience as audience_service
from app.services import audit, tagging
from app.services.permissions import manager_required

bp = Blueprint("tags", __name__)


def _store():
    if g.store is None:
        abort(404)
    return g.store


def _tag(store, tag_id: int) -> Tag:
    tag = Tag.get_or_none(Tag.id == tag_id, Tag.store == store.id)
    if tag is None:
        abort(404)
    return tag


def _context(store, **extra) -> dict:
    now = clock.now()
    ctx = {
        "store": store,
        "health": tagging.health(store, now),
        "rules": list(
            TagRule.select(TagRule, Tag)
            .join(Tag)
            .where(TagRule.store == store.id)
            .order_by(TagRule.id)
        ),
        "presets": tagging.PRESETS,
        "errors": {},
        "form": {},
        "message": "",
        "rule_errors": {},
        "rule_form": {},
    }
    ctx.update(extra)
    return ctx


@bp.route("/tags")
@manager_required
def index():
    """Tags with their counts and colours, rules, and tag health."""
    return render("tags/index.html", "tags/_tags.html", **_context(_store()))


@bp.route("/tags", methods=["POST"])
@manager_required
def create():
    """Add a tag."""
    store = _store()
    try:
        tagging.save_tag(store, request.form, current_user.staff, clock.now())
    except tagging.TagError as exc:
        ctx = _context(store, errors=exc.errors, form=request.form)
        return render("tags/index.html", "tags/_tags.html", status=422, **ctx)
    return render("tags/index.html", "tags/_tags.html", **_context(store, message=_("Tag saved.")))


@bp.route("/tags/<int:tag_id>", methods=["POST"])
@manager_required
def update(tag_id: int):
    """Rename, recolour or move a tag to another dimension."""
    store = _store()
    tag = _tag(store, tag_id)
    try:
        tagging.save_tag(store, request.form, current_user.staff, clock.now(), tag=tag)
    except tagging.TagError as exc:
        ctx = _context(store, errors={**exc.errors, "tag_id": tag.id}, form=request.form)
        return render("tags/index.html", "tags/_tags.html", status=422, **ctx)
    return render("tags/index.html", "tags/_tags.html", **_context(store, message=_("Tag saved.")))


@bp.route("/tags/<int:tag_id>/delete", methods=["POST"])
@manager_required
def delete(tag_id: int):
    """Delete a tag (customers lose it; its rules go too)."""
    store = _store()
    tagging.delete_tag(_tag(store, tag_id), current_user.staff, clock.now())
    return render(
        "tags/index.html", "tags/_tags.html", **_context(store, message=_("Tag deleted."))
    )


def _bulk_audience(form) -> dict | None:
    raw = (form.get("audience") or "").strip()
    if raw:
        return json.loads(raw)
    return tagging.simple_audience(form.getlist("has_tag"), (form.get("source") or "").strip())


@bp.route("/tags/bulk", methods=["GET", "POST"])
@manager_required
def bulk():
    """Add or remove a tag on every client matching a filter (count shown before applying)."""
    store = _store()
    form = request.form if request.method == "POST" else request.args
    errors, count, message = {}, None, ""
    now = clock.now()
    try:
        aud = _bulk_audience(form)
        count = audience_service.count(store.id, aud, now)
    except ValueError as exc:
        aud = None
        errors["audience"] = (
            "; ".join(e["message"] for e in exc.errors)
            if isinstance(exc, audience_service.AudienceError)
            else _("The conditions are not valid JSON.")
        )
    status = 200
    if request.method == "POST" and not errors:
        tag = Tag.get_or_none(Tag.store == store.id, Tag.id == form.get("tag", type=int))
        if tag is None:
            errors["tag"] = _("Choose a tag.")
        else:
            try:
                n = tagging.bulk_edit(
                    store, aud, tag, form.get("action", ""), current_user.staff, now
                )
                message = (
                    _("“%(tag)s” added to %(n)s clients.", tag=tag.name, n=n)
                    if form.get("action") == "add"
                    else _("“%(tag)s” removed from %(n)s clients.", tag=tag.name, n=n)
                )
            except tagging.TagError as exc:
                errors.update(exc.errors)
    if errors and request.method == "POST":
        status = 422
    sources = [
        s
        for (s,) in Customer.select(Customer.source)
        .where(Customer.store == store.id, Customer.source.is_null(False))
        .distinct()
        .order_by(Customer.source)
        .limit(100)
        .tuples()
    ]
    return render(
        "tags/bulk.html",
        "tags/_bulk.html",
        status=status,
        store=store,
        tags=list(Tag.select().where(Tag.store == store.id).order_by(Tag.name)),
        sources=sources,
        form=form,
        count=count,
        errors=errors,
        message=message,
    )


@bp.route("/tags/rules", methods=["POST"])
@manager_required
def create_rule():
    """Add an automatic rule (from a preset or conditions)."""
    store = _store()
    try:
        tagging.save_rule(store, request.form, current_user.staff, clock.now())
    except tagging.TagError as exc:
        ctx = _context(store, rule_errors=exc.errors, rule_form=request.form)
        return render("tags/index.html", "tags/_tags.html", status=422, **ctx)
    return render("tags/index.html", "tags/_tags.html", **_context(store, message=_("Rule saved.")))


def _rule(store, rule_id: int) -> TagRule:
    rule = TagRule.get_or_none(TagRule.id == rule_id, TagRule.store == store.id)
    if rule is None:
        abort(404)
    return rule


@bp.route("/tags/rules/<int:rule_id>/toggle", methods=["POST"])
@manager_required
def toggle_rule(rule_id: int):
    """Switch a rule on or off."""
    store = _store()
    rule = _rule(store, rule_id)
    rule.active = not rule.active
    rule.save()
    audit.record(
        current_user.staff,
        store,
        "tag_rule.switched",
        "tag_rule",
        rule.id,
        {"active": rule.active},
        clock.now(),
    )
    return render("tags/index.html", "tags/_tags.html", **_context(store))


@bp.route("/tags/rules/<int:rule_id>/delete", methods=["POST"])
@manager_required
def delete_rule(rule_id: int):
    """Delete a rule (tags it gave stay)."""
    store = _store()
    rule = _rule(store, rule_id)
    audit.record(
        current_user.staff,
        store,
        "tag_rule.deleted",
        "tag_rule",
        rule.id,
        {"tag": rule.tag.name, "action": rule.action},
        clock.now(),
    )
    rule.delete_instance()
    return render("tags/index.html", "tags/_tags.html", **_context(store))


@bp.route("/tags/rules/run", methods=["POST"])
@manager_required
def run_rules():
    """Run every active rule now."""
    store = _store()
    changed = tagging.run_rules(store, clock.now())
    msg = _("Rules ran: %(n)s tag changes.", n=sum(changed.values()))
    if request.headers.get("HX-Request") != "true":
        return redirect(url_for("tags.index"))
    return render("tags/index.html", "tags/_tags.html", **_context(store, message=msg))
