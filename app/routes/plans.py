"""Plans for managers."""

from flask import Blueprint, g

from app.htmx import render
from app.models import Plan
from app.services.permissions import manager_required

bp = Blueprint("plans", __name__)


@bp.route("/plans")
@manager_required
def index():
    """The plans of the current store."""
    plans = (
        list(Plan.select().where(Plan.store == g.store.id).order_by(Plan.status, Plan.name))
        if g.store
        else []
    )
    return render("plans/index.html", "plans/_list.html", plans=plans)
