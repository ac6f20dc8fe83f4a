"""Work management: the team's follow-ups in bulk, deactivating staff, nudges and notices."""

from datetime import date

from flask import Blueprint, abort, g, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from peewee import JOIN

from app import clock
from app.htmx import redirect, render
from app.models import ContactLog, Customer, FollowUp, Notice, Plan, Staff, StaffStore, Store
from app.services import audit, reports, schedule
from app.services import settings as settings_service
from app.services.permissions import manager_required

bp = Blueprint("team", __name__)
PAGE = 100
STATUSES = ("open", "done", "withdrawn", "expired")
FILTERS = ("assignee", "plan", "status", "overdue", "due_from", "due_to", "outcome")


@bp.app_context_processor
def unread_notices():
    """Unread notices of the signed-in staff member (for the banner in base.html), each
    text once per store."""

    def notices():
        if not current_user.is_authenticated:
            return []
        shown: dict = {}
        for notice in (
            Notice.select(Notice, Store.id, Store.name)
            .join(Store, JOIN.LEFT_OUTER, on=(Notice.store == Store.id))
            .where(Notice.staff == current_user.id, Notice.read_at.is_null())
            .order_by(Notice.created_at.desc())
            .limit(50)
        ):
            shown.setdefault((notice.store_id, notice.text), notice)
        return list(shown.values())[:5]

    return {"unread_notices": notices}


def _store():
    if g.store is None:
        abort(404)
    return g.store


def _member(store, staff_id: int) -> Staff:
    """A staff member of the store, or 404."""
    person = (
        Staff.select()
        .join(StaffStore)
        .where(Staff.id == staff_id, StaffStore.store == store.id)
        .first()
    )
    if person is None or (person.role == "owner" and current_user.role != "owner"):
        abort(404)
    return person


def _day(value) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def filtered(store, args) -> tuple:
    """The store's follow-ups narrowed by the list filters (a query) and the filters used."""
    now = clock.now()
    f = {k: (args.get(k) or "").strip() for k in FILTERS}
    query = FollowUp.select(FollowUp.id).where(FollowUp.store == store.id)
    if f["assignee"] == "none":
        query = query.where(FollowUp.assignee.is_null())
    elif f["assignee"].isdigit():
        query = query.where(FollowUp.assignee == int(f["assignee"]))
    if f["plan"].isdigit():
        query = query.where(FollowUp.plan == int(f["plan"]))
    if f["status"] in STATUSES:
        query = query.where(FollowUp.status == f["status"])
    if f["overdue"]:
        query = query.where(FollowUp.status == "open", FollowUp.due_at < now)
    first, last = _day(f["due_from"]), _day(f["due_to"])
    if first:
        query = query.where(FollowUp.due_at >= schedule.day_bounds(first, store.timezone)[0])
    if last:
        query = query.where(FollowUp.due_at < schedule.day_bounds(last, store.timezone)[1])
    if f["outcome"]:
        logs = ContactLog.select(ContactLog.followup).where(ContactLog.outcome == f["outcome"])
        if first:
            logs = logs.where(ContactLog.at >= schedule.day_bounds(first, store.timezone)[0])
        if last:
            logs = logs.where(ContactLog.at < schedule.day_bounds(last, store.timezone)[1])
        query = query.where(FollowUp.id.in_(logs))
    return query, f


def _list_context(store, args, message: str = "", errors: dict | None = None) -> dict:
    ids, f = filtered(store, args)
    rows = list(
        FollowUp.select(FollowUp, Customer, Staff, Plan)
        .join(Customer, on=(FollowUp.customer == Customer.id))
        .switch(FollowUp)
        .join(Staff, join_type=JOIN.LEFT_OUTER, on=(FollowUp.assignee == Staff.id))
        .switch(FollowUp)
        .join(Plan, join_type=JOIN.LEFT_OUTER, on=(FollowUp.plan == Plan.id))
        .where(FollowUp.id.in_(ids))
        .order_by(FollowUp.due_at, FollowUp.id)
        .limit(PAGE)
    )
    return {
        "rows": rows,
        "total": ids.count(),
        "f": f,
        "people": settings_service.store_employees(store),
        "plans": list(Plan.select().where(Plan.store == store.id).order_by(Plan.name)),
        "statuses": STATUSES,
        "store": store,
        "now": clock.now(),
        "message": message,
        "errors": errors or {},
    }


@bp.route("/team/followups")
@manager_required
def followups():
    """The team's follow-ups, filterable, with bulk reassignment."""
    store = _store()
    return render(
        "team/followups.html", "team/_followups.html", **_list_context(store, request.args)
    )


@bp.route("/team/followups/reassign", methods=["POST"])
@manager_required
def reassign():
    """Give the selected (or all matching) follow-ups to a person, round-robin or the queue."""
    store = _store()
    form = request.form
    ids_query, _f = filtered(store, form)
    if form.get("all_matching") == "1":
        ids = [f.id for f in ids_query.where(FollowUp.status == "open")]
    else:
        chosen = [int(i) for i in form.getlist("ids") if i.isdigit()]
        ids = [f.id for f in ids_query.where(FollowUp.id.in_(chosen))] if chosen else []
    if not ids:
        ctx = _list_context(store, form, errors={"ids": _("Select at least one follow-up.")})
        return render("team/followups.html", "team/_followups.html", status=422, **ctx)
    try:
        current = form.get("assignee", "")
        moved = settings_service.hand_over(
            ids,
            store,
            form.get("target", ""),
            current_user.staff,
            clock.now(),
            exclude=int(current) if current.isdigit() else None,
        )
    except settings_service.SettingsError as exc:
        ctx = _list_context(store, form, errors=exc.errors)
        return render("team/followups.html", "team/_followups.html", status=422, **ctx)
    ctx = _list_context(store, form, message=_("%(n)s follow-ups reassigned.", n=moved))
    return render("team/followups.html", "team/_followups.html", **ctx)


@bp.route("/team")
@manager_required
def index():
    """The store's people with their open and overdue work; nudge or deactivate."""
    store = _store()
    now = clock.now()
    counts = {
        k: (o, od)
        for k, o, od in FollowUp.select(
            FollowUp.assignee,
            reports.sum_if(FollowUp.status == "open"),
            reports.sum_if((FollowUp.status == "open") & (FollowUp.due_at < now)),
        )
        .where(FollowUp.store == store.id)
        .group_by(FollowUp.assignee)
        .tuples()
    }
    people = list(
        Staff.select()
        .join(StaffStore)
        .where(StaffStore.store == store.id)
        .order_by(Staff.active.desc(), Staff.name)
    )
    return render(
        "team/index.html",
        "team/_people.html",
        people=people,
        counts=counts,
        store=store,
        message=request.args.get("done", ""),
    )


@bp.route("/team/staff/<int:staff_id>/nudge", methods=["POST"])
@manager_required
def nudge(staff_id: int):
    """Send an in-app notice about overdue work."""
    store = _store()
    person = _member(store, staff_id)
    now = clock.now()
    overdue = (
        FollowUp.select()
        .where(
            FollowUp.store == store.id,
            FollowUp.assignee == person.id,
            FollowUp.status == "open",
            FollowUp.due_at < now,
        )
        .count()
    )
    text = (request.form.get("text") or "").strip()[:500] or _(
        "You have %(n)s overdue follow-ups. Please have a look today.", n=overdue
    )
    Notice.create(
        staff=person.id,
        store=store.id,
        sender=current_user.id,
        text=text,
        url="/today",
        created_at=now,
    )
    audit.record(
        current_user.staff, store, "staff.nudged", "staff", person.id, {"overdue": overdue}, now
    )
    return render(
        "team/index.html",
        "team/_nudged.html",
        person=person,
        overdue=overdue,
        people=[],
        counts={},
        store=store,
        message="",
    )


@bp.route("/team/staff/<int:staff_id>/deactivate", methods=["GET", "POST"])
@manager_required
def deactivate(staff_id: int):
    """Ask where the open follow-ups go, then switch the login off and end its sessions."""
    store = _store()
    person = _member(store, staff_id)
    if person.id == current_user.id:
        abort(403)
    open_count = (
        FollowUp.select().where(FollowUp.assignee == person.id, FollowUp.status == "open").count()
    )
    ctx = dict(
        person=person,
        store=store,
        open_count=open_count,
        people=settings_service.store_employees(store, exclude=person.id),
        errors={},
    )
    if request.method == "GET":
        return render("team/deactivate.html", "team/_deactivate.html", **ctx)
    try:
        moved = settings_service.deactivate_staff(
            person, store, request.form.get("target", ""), current_user.staff, clock.now()
        )
    except settings_service.SettingsError as exc:
        ctx["errors"] = exc.errors
        return render("team/deactivate.html", "team/_deactivate.html", status=422, **ctx)
    done = _("%(name)s is switched off; %(n)s follow-ups handed over.", name=person.name, n=moved)
    return redirect(url_for("team.index", done=done))


@bp.route("/team/notices/<int:notice_id>/read", methods=["POST"])
@login_required
def read_notice(notice_id: int):
    """Mark one of my notices read, with its unread repeats (the banner disappears)."""
    notice = Notice.get_or_none(Notice.id == notice_id, Notice.staff == current_user.id)
    if notice is None:
        abort(404)
    Notice.update(read_at=clock.now()).where(
        Notice.staff == current_user.id,
        Notice.read_at.is_null(),
        Notice.store.is_null() if notice.store_id is None else Notice.store == notice.store_id,
        Notice.text == notice.text,
    ).execute()
    return render("team/_notices.html", "team/_notices.html")
