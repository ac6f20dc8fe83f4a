"""The landing page per role and the current-store switch."""

from flask import Blueprint, abort, g, redirect, request, session, url_for
from flask_login import current_user, login_required

from app.services import permissions

bp = Blueprint("home", __name__)


@bp.before_app_request
def load_current_store():
    """Put the store being worked in on g (the chosen one if allowed, else the first)."""
    g.store = None
    g.stores = []
    if not current_user.is_authenticated:
        return
    stores = list(permissions.visible_stores(current_user.staff))
    g.stores = stores
    chosen = session.get("store_id")
    g.store = next((s for s in stores if s.id == chosen), stores[0] if stores else None)


@bp.route("/")
@login_required
def index():
    """Send staff to Today and managers to the dashboard."""
    if current_user.role == "employee":
        return redirect(url_for("followups.today"))
    return redirect(url_for("dashboard.index"))


@bp.route("/store", methods=["POST"])
@login_required
def switch_store():
    """Work in another of my stores."""
    try:
        store_id = int(request.form.get("store_id", ""))
    except ValueError:
        abort(400)
    if store_id not in permissions.store_ids(current_user.staff):
        abort(404)
    session["store_id"] = store_id
    return redirect(request.referrer or url_for("home.index"), code=303)
