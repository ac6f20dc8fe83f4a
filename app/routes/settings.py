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


@bp.route("/settings/sign-ins")
@manager_required
def sign_ins():
    """The login audit: recent sign-in attempts of the people I manage."""
    from flask import render_template

    from app.models import LoginEvent

    query = LoginEvent.select().order_by(LoginEvent.at.desc()).limit(200)
    if current_user.role != "owner":
        ids = [s.id for s in permissions.visible_stores(current_user.staff)]
        staff_ids = StaffStore.select(StaffStore.staff).where(StaffStore.store.in_(ids))
        query = query.where(LoginEvent.staff.in_(staff_ids))
    return render_template("settings/sign_ins.html", events=list(query))
