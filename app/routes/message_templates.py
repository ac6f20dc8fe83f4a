"""Message templates for managers: list, edit per language, preview, WhatsApp approval status."""

from flask import Blueprint, abort, flash, g, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app import clock
from app.config import LANGUAGES
from app.htmx import redirect, render
from app.models import Customer, MessageTemplate, Store
from app.routes.plans import APPROVAL_LABELS
from app.routes.plans import CHANNEL_LABELS as PLAN_CHANNEL_LABELS
from app.services import message_templates as service
from app.services import permissions, scripts
from app.services.validation import ValidationError

bp = Blueprint("message_templates", __name__, url_prefix="/message-templates")

STATUS_LABELS = APPROVAL_LABELS
CHANNEL_LABELS = {"": _l("Any channel"), **PLAN_CHANNEL_LABELS}


def _template_or_404(template_id: int) -> MessageTemplate:
    """A template of one of the viewer's stores, or 404."""
    template = MessageTemplate.get_or_none(MessageTemplate.id == template_id)
    if template is None or template.store_id not in permissions.store_ids(current_user):
        abort(404)
    return template


def _values(template: MessageTemplate | None) -> dict:
    """The form's values for a new or an existing template."""
    if template is None:
        return {
            "name": "",
            "channel": "",
            "wa_name": "",
            "variants": {loc: {"body": "", "wa_language": ""} for loc in service.LOCALES},
        }
    variants = service.variants_of(template)
    return {
        "name": template.name,
        "channel": template.channel,
        "wa_name": template.wa_name,
        "variants": {
            loc: {
                "body": variants[loc].body if loc in variants else "",
                "wa_language": variants[loc].wa_language if loc in variants else "",
            }
            for loc in service.LOCALES
        },
    }


def _posted() -> dict:
    form = request.form
    return {
        "name": form.get("name", "").strip(),
        "channel": form.get("channel", ""),
        "wa_name": form.get("wa_name", "").strip(),
        "variants": {
            loc: {
                "body": form.get(f"body.{loc}", ""),
                "wa_language": form.get(f"wa_language.{loc}", "").strip(),
            }
            for loc in service.LOCALES
        },
    }


def _ctx(store: Store, template: MessageTemplate | None, values: dict, errors=None) -> dict:
    field_errors: dict[str, list[str]] = {}
    for err in errors or []:
        field_errors.setdefault(err.get("field") or "", []).append(err["message"])
    variants = service.variants_of(template) if template else {}
    return {
        "store": store,
        "template": template,
        "values": values,
        "errors": field_errors,
        "variants": variants,
        "approval": service.approval(template, variants) if template else "",
        "plans": service.usage(template) if template else [],
        "meta_bodies": {loc: service.meta_body(v.body) for loc, v in variants.items()},
        "default_languages": service.WA_LANGUAGES,
        "locales": service.LOCALES,
        "languages": LANGUAGES,
        "channel_labels": CHANNEL_LABELS,
        "status_labels": STATUS_LABELS,
        "variables": scripts.VARIABLES,
        "action_url": (
            url_for("message_templates.edit", template_id=template.id)
            if template
            else url_for("message_templates.new")
        ),
    }


@bp.route("")
@permissions.manager_required
def index():
    """The store's message templates with their channel and approval status."""
    if g.store is None:
        abort(404)
    rows = [
        (t, service.approval(t), len(service.usage(t))) for t in service.templates_of(g.store.id)
    ]
    return render(
        "message_templates/index.html",
        "message_templates/_list.html",
        rows=rows,
        channel_labels=CHANNEL_LABELS,
        status_labels=STATUS_LABELS,
    )


def _save(store: Store, template: MessageTemplate | None):
    values = _posted()
    try:
        saved = service.save_template(
            store, values, clock.now(), staff=current_user.id, template=template
        )
    except ValidationError as exc:
        return render(
            "message_templates/form.html",
            "message_templates/_form.html",
            status=422,
            **_ctx(store, template, values, exc.errors),
        )
    flash(_("Template saved."), "success")
    if service.approval(saved) == "pending":
        flash(
            _(
                "Submit each language to Meta with the text shown, then check the status here. "
                "Plans using it can be switched on once Meta approves."
            ),
            "success",
        )
    return redirect(url_for("message_templates.edit", template_id=saved.id))


@bp.route("/new", methods=["GET", "POST"])
@permissions.manager_required
def new():
    """A new template: a name, the channel, and the text in each language."""
    if g.store is None:
        abort(404)
    if request.method == "POST":
        return _save(g.store, None)
    return render(
        "message_templates/form.html",
        "message_templates/_form.html",
        **_ctx(g.store, None, _values(None)),
    )


@bp.route("/<int:template_id>", methods=["GET", "POST"])
@permissions.manager_required
def edit(template_id: int):
    """A template: its languages, Meta status, the plans using it; saving edits it."""
    template = _template_or_404(template_id)
    store = Store.get_by_id(template.store_id)
    if request.method == "POST":
        return _save(store, template)
    return render(
        "message_templates/form.html",
        "message_templates/_form.html",
        **_ctx(store, template, _values(template)),
    )


@bp.route("/<int:template_id>/refresh", methods=["POST"])
@permissions.manager_required
def refresh(template_id: int):
    """Ask WhatsApp for the template's approval status now."""
    template = _template_or_404(template_id)
    store = Store.get_by_id(template.store_id)
    error = ""
    try:
        changes = service.refresh_status(template, clock.now(), staff=current_user.id)
        note = _("Status checked: %(n)s languages changed.", n=len(changes))
    except ValidationError as exc:
        error = "; ".join(e["message"] for e in exc.errors)
        note = ""
    variants = service.variants_of(template)
    return render(
        "message_templates/status.html",
        "message_templates/_status.html",
        status=200 if not error else 422,
        template=template,
        store=store,
        variants=variants,
        approval=service.approval(template, variants),
        status_labels=STATUS_LABELS,
        languages=LANGUAGES,
        note=note,
        error=error,
    )


@bp.route("/<int:template_id>/preview", methods=["POST"])
@permissions.manager_required
def preview(template_id: int):
    """The template rendered in every language for a real customer (search by name)."""
    template = _template_or_404(template_id)
    store = Store.get_by_id(template.store_id)
    q = request.form.get("q", "").strip()
    query = Customer.select().where(Customer.store == store.id)
    if q:
        query = query.where(Customer.name.contains(q) | Customer.phone.contains(q))
    chosen = request.form.get("customer", "")
    customer = None
    if chosen.isdigit():
        customer = query.where(Customer.id == int(chosen)).first()
    found = list(query.order_by(Customer.name).limit(10))
    customer = customer or (found[0] if found else None)
    result = service.preview(template, customer, store, clock.now()) if customer else None
    return render(
        "message_templates/preview.html",
        "message_templates/_preview.html",
        template=template,
        customer=customer,
        found=found,
        q=q,
        result=result,
        languages=LANGUAGES,
    )


@bp.route("/<int:template_id>/delete", methods=["POST"])
@permissions.manager_required
def delete(template_id: int):
    """Delete a template no plan uses."""
    template = _template_or_404(template_id)
    try:
        service.delete_template(template, clock.now(), staff=current_user.id)
    except ValidationError:
        flash(_("Plans still use this template; change them first."), "error")
        return redirect(url_for("message_templates.edit", template_id=template.id))
    flash(_("Template deleted."), "success")
    return redirect(url_for("message_templates.index"))
