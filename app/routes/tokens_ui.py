"""Settings: API tokens for a manager's stores (shown once, revocable, last use visible)."""

from flask import Blueprint, abort, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app import clock, htmx
from app.models import ApiToken
from app.services import permissions, tokens
from app.services.permissions import manager_required

bp = Blueprint("tokens_ui", __name__)


def _page(status: int = 200, **ctx):
    """The tokens page (or its main fragment for htmx) with the viewer's stores and tokens."""
    stores = list(permissions.visible_stores(current_user.staff))
    items = list(tokens.list_tokens([s.id for s in stores])) if stores else []
    ctx.setdefault("form", {})
    ctx.setdefault("errors", {})
    return htmx.render(
        "settings/tokens.html",
        "settings/_tokens.html",
        status=status,
        stores=stores,
        tokens=items,
        **ctx,
    )


@bp.route("/settings/tokens")
@manager_required
def index():
    """The API tokens of my stores and a form to make a new one."""
    return _page()


@bp.route("/settings/tokens", methods=["POST"])
@manager_required
def create():
    """Make a token and show it once."""
    allowed = {s.id: s for s in permissions.visible_stores(current_user.staff)}
    form = {"name": request.form.get("name", "").strip(), "store": request.form.get("store", "")}
    errors = {}
    store = allowed.get(int(form["store"])) if form["store"].isdigit() else None
    if store is None:
        errors["store"] = _("Choose one of your stores.")
    if not form["name"]:
        errors["name"] = _("Give the token a name, e.g. the system that will use it.")
    elif len(form["name"]) > 100:
        errors["name"] = _("At most 100 characters.")
    if errors:
        return _page(422, form=form, errors=errors)
    token, raw = tokens.create_token(store, form["name"], created_by=current_user.staff)
    resp = _page(201, created=token, raw_token=raw)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/settings/tokens/<int:token_id>/revoke", methods=["POST"])
@manager_required
def revoke(token_id: int):
    """Revoke a token of one of my stores for good."""
    store_ids = permissions.store_ids(current_user.staff)
    token = ApiToken.get_or_none((ApiToken.id == token_id) & ApiToken.store.in_(store_ids))
    if token is None:
        abort(404)
    tokens.revoke(token, clock.now())
    if htmx.is_partial():
        return _page()
    return htmx.redirect(url_for("tokens_ui.index"))
