"""Settings: stores and staff."""

from flask import Blueprint
from flask_login import current_user

from app.models import Staff, StaffStore
from app.services import permissions
from app.services.permissions import manager_required

bp = Blueprint("settings", __name__)


@bp.route("/settings")
@manager_required
def index():
    """My stores and the people who work in them."""
    from flask import render_template

    stores = list(permissions.visible_stores(current_user.staff))
    ids = [s.id for s in stores]
    staff = list(
        Staff.select()
        .join(StaffStore)
        .where(StaffStore.store.in_(ids))
        .distinct()
        .order_by(Staff.name)
    )
    return render_template("settings/index.html", stores=stores, staff=staff)
