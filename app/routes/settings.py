"""Settings a manager or owner changes without a developer; the audit trail."""

from datetime import timedelta
from zoneinfo import available_timezones

from flask import Blueprint, abort, render_template, request
from flask_babel import gettext as _
from flask_login import current_user
from peewee import JOIN

from app import clock
from app.htmx import render
from app.models import ChannelSetting, LoginEvent, Plan, PlanVersion, Staff, StaffStore, Store
from app.services import audit, permissions
from app.services import settings as service
from app.services.permissions import manager_required

bp = Blueprint("settings", __name__)
TIMEZONES = sorted(tz for tz in available_timezones() if "/" in tz and not tz.startswith("Etc"))


@bp.route("/settings")
@manager_required
def index():
    """My stores and the people who work in them."""
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
    query = LoginEvent.select().order_by(LoginEvent.at.desc()).limit(200)
    if current_user.role != "owner":
        ids = [s.id for s in permissions.visible_stores(current_user.staff)]
        staff_ids = StaffStore.select(StaffStore.staff).where(StaffStore.store.in_(ids))
        query = query.where(LoginEvent.staff.in_(staff_ids))
    return render_template("settings/sign_ins.html", events=list(query))


def _store(store_id: int) -> Store:
    if store_id not in permissions.store_ids(current_user.staff):
        abort(404)
    return Store.get_by_id(store_id)


def _store_ctx(store: Store, form=None, errors=None, message="", price_errors=None) -> dict:
    return {
        "store": store,
        "form": form or service.store_form(store),
        "errors": errors or {},
        "price_errors": price_errors or {},
        "message": message,
        "timezones": TIMEZONES,
        "regions": service.REGIONS,
        "currencies": service.CURRENCIES,
        "locales": service.LOCALES,
        "channels": list(
            ChannelSetting.select()
            .where(ChannelSetting.store == store.id)
            .order_by(ChannelSetting.channel)
        ),
    }


@bp.route("/settings/stores/<int:store_id>", methods=["GET", "POST"])
@manager_required
def store(store_id: int):
    """The store profile, contact rules and working days."""
    st = _store(store_id)
    if request.method == "GET":
        return render("settings/store.html", "settings/_store.html", **_store_ctx(st))
    form = {k: request.form.get(k, "") for k in service.store_form(st)}
    form["working_days"] = [int(d) for d in request.form.getlist("working_days") if d.isdigit()]
    try:
        changes = service.update_store(st, request.form, current_user.staff, clock.now())
    except service.SettingsError as exc:
        ctx = _store_ctx(st, form=form, errors=exc.errors)
        return render("settings/store.html", "settings/_store.html", status=422, **ctx)
    msg = _("Saved.") if changes else _("Nothing changed.")
    return render("settings/store.html", "settings/_store.html", **_store_ctx(st, message=msg))


@bp.route("/settings/stores/<int:store_id>/prices", methods=["POST"])
@manager_required
def prices(store_id: int):
    """Each channel's price per message."""
    st = _store(store_id)
    try:
        service.update_prices(st, request.form, current_user.staff, clock.now())
    except service.SettingsError as exc:
        ctx = _store_ctx(st, price_errors=exc.errors)
        return render("settings/store.html", "settings/_store.html", status=422, **ctx)
    ctx = _store_ctx(st, message=_("Prices saved."))
    return render("settings/store.html", "settings/_store.html", **ctx)


def _staff_ctx(person=None, form=None, errors=None, password=None) -> dict:
    stores = list(permissions.visible_stores(current_user.staff))
    if form is None and person is not None:
        form = {
            "name": person.name,
            "email": person.email,
            "role": person.role,
            "stores": [
                str(m.store_id) for m in StaffStore.select().where(StaffStore.staff == person.id)
            ],
        }
    return {
        "person": person,
        "stores": stores,
        "form": form or {"role": "employee", "stores": []},
        "errors": errors or {},
        "password": password,
        "roles": ("employee", "manager", "owner")
        if current_user.role == "owner"
        else ("employee",),
    }


def _form_dict() -> dict:
    return {
        "name": request.form.get("name", ""),
        "email": request.form.get("email", ""),
        "role": request.form.get("role", "employee"),
        "stores": request.form.getlist("stores"),
    }


@bp.route("/settings/staff/new", methods=["GET", "POST"])
@manager_required
def new_staff():
    """Add a login (a manager adds employees to their own stores)."""
    if request.method == "GET":
        return render("settings/staff.html", "settings/_staff.html", **_staff_ctx())
    try:
        person, password = service.save_staff(
            request.form,
            current_user.staff,
            permissions.store_ids(current_user.staff),
            clock.now(),
        )
    except service.SettingsError as exc:
        ctx = _staff_ctx(form=_form_dict(), errors=exc.errors)
        return render("settings/staff.html", "settings/_staff.html", status=422, **ctx)
    ctx = _staff_ctx(person=person, password=password)
    return render("settings/staff.html", "settings/_staff.html", status=201, **ctx)


def _person(staff_id: int) -> Staff:
    ids = permissions.store_ids(current_user.staff)
    person = Staff.get_or_none(Staff.id == staff_id)
    if person is None:
        abort(404)
    if current_user.role != "owner":
        shares = StaffStore.select().where(StaffStore.staff == person.id, StaffStore.store.in_(ids))
        if person.role == "owner" or not shares.exists():
            abort(404)
    return person


@bp.route("/settings/staff/<int:staff_id>", methods=["GET", "POST"])
@manager_required
def edit_staff(staff_id: int):
    """Change a person's name, e-mail, role and stores."""
    person = _person(staff_id)
    if request.method == "GET":
        return render("settings/staff.html", "settings/_staff.html", **_staff_ctx(person))
    try:
        service.save_staff(
            request.form,
            current_user.staff,
            permissions.store_ids(current_user.staff),
            clock.now(),
            person=person,
        )
    except service.SettingsError as exc:
        ctx = _staff_ctx(person, form=_form_dict(), errors=exc.errors)
        return render("settings/staff.html", "settings/_staff.html", status=422, **ctx)
    return render("settings/staff.html", "settings/_staff.html", **_staff_ctx(person))


@bp.route("/settings/audit")
@manager_required
def audit_log():
    """Who changed which plan, tag rule, assignment or setting, and when."""
    ids = permissions.store_ids(current_user.staff)
    kind = request.args.get("type", "")
    staff_id = request.args.get("staff", type=int)
    days = request.args.get("days", 30, type=int)
    now = clock.now()
    since = now - timedelta(days=max(1, min(days, 3650)))
    plan_id = request.args.get("plan", type=int)
    versions = []
    if plan_id:
        kind = "plan"
        plan = Plan.get_or_none(Plan.id == plan_id, Plan.store.in_(ids))
        if plan is None:
            abort(404)
        versions = list(
            PlanVersion.select(PlanVersion, Staff)
            .join(Staff, join_type=JOIN.LEFT_OUTER, on=(PlanVersion.created_by == Staff.id))
            .where(PlanVersion.plan == plan.id)
            .order_by(PlanVersion.version.desc())
        )
    rows = audit.entries(
        ids,
        object_type=kind,
        object_id=str(plan_id) if plan_id else "",
        staff_id=staff_id,
        since=since,
    )
    people = list(
        Staff.select()
        .join(StaffStore)
        .where(StaffStore.store.in_(ids))
        .distinct()
        .order_by(Staff.name)
    )
    plans = list(Plan.select().where(Plan.store.in_(ids)).order_by(Plan.name))
    return render(
        "settings/audit.html",
        "settings/_audit.html",
        rows=rows,
        kinds=audit.OBJECT_TYPES,
        kind=kind,
        staff_id=staff_id,
        days=days,
        people=people,
        plans=plans,
        plan_id=plan_id,
        versions=versions,
        stores={s.id: s for s in Store.select().where(Store.id.in_(ids))},
    )
