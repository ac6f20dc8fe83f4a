"""The staff area: Today, the follow-up card, logging outcomes, snoozing, undo and leave."""

import uuid
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from urllib.parse import quote
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton, format_time
from flask import Blueprint, abort, flash, g, request, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_login import current_user, login_required
from peewee import JOIN

from app import clock
from app.htmx import is_partial, redirect, render, trigger
from app.models import (
    ContactLog,
    Customer,
    CustomerCard,
    CustomerTag,
    Event,
    EventItem,
    FollowUp,
    FollowUpReason,
    Message,
    Staff,
    StaffLeave,
    StaffStore,
    Store,
    Tag,
    Visit,
)
from app.services import followups as service
from app.services import permissions
from app.templating import fmt_date, fmt_datetime, fmt_money, local_dt

bp = Blueprint("followups", __name__)

OUTCOME_LABELS = {
    "reached": "Reached",
    "booked": "Booked",
    "no_answer": "No answer",
    "declined": "Declined",
    "wrong_number": "Wrong number",
    "opted_out": "Opted out",
}


def _outcome_labels() -> dict[str, str]:
    return {
        "reached": _("Reached"),
        "booked": _("Booked"),
        "no_answer": _("No answer"),
        "declined": _("Declined"),
        "wrong_number": _("Wrong number"),
        "opted_out": _("Opted out"),
    }


@lru_cache(maxsize=4096)
def _time_text(hour: int, minute: int, locale: str) -> str:
    return format_time(time(hour, minute), "short", locale=locale)


@lru_cache(maxsize=4096)
def _day_text(day: date, with_year: bool, locale: str) -> str:
    return format_skeleton("yMMMd" if with_year else "MMMd", day, locale=locale)


@bp.app_template_filter("due")
def due_label(value: datetime | None) -> str:
    """A due time, short: just the time when it is today, else the day and the time."""
    if value is None:
        return ""
    local = local_dt(value)
    today = local_dt(clock.now()).date()
    locale = str(get_locale() or "en")
    # Today renders dozens of rows: the formatted pieces are cached per locale.
    time_part = _time_text(local.hour, local.minute, locale)
    if local.date() == today:
        return time_part
    return f"{_day_text(local.date(), local.year != today.year, locale)} {time_part}"


@bp.app_template_filter("fact")
def fact_label(fact: dict) -> str:
    """The row's most useful fact (see services.followups.useful_fact) as one short phrase."""
    kind, value = fact["kind"], fact["value"]
    if kind == "balance":
        return _("Balance %(amount)s", amount=fmt_money(value))
    if kind == "uses":
        return ngettext("%(num)d use left", "%(num)d uses left", value)
    if kind == "expiry":
        this_year = local_dt(clock.now()).year
        day = _day_text(value, value.year != this_year, str(get_locale() or "en"))
        return _("Expires %(date)s", date=day)
    if kind == "points":
        return ngettext("%(num)d point", "%(num)d points", value)
    if kind == "birthday":
        return _("Birthday %(date)s", date=fmt_date(value, "d MMM"))
    if kind == "source":
        return _("Came from %(source)s", source=value)
    if kind == "days_since":
        return ngettext("Last visit %(num)d day ago", "Last visit %(num)d days ago", value)
    return _("No visit yet")


def _error(exc: service.FollowUpError) -> str:
    messages = {
        "outcome_unknown": _("Choose what happened."),
        "closed": _("This follow-up is already closed."),
        "next_in_past": _("The next follow-up must be in the future."),
        "nothing_to_undo": _("There is nothing to undo."),
        "undo_too_late": _("Too late to undo; log the follow-up again instead."),
        "undo_clash": _("The client already has another open follow-up."),
        "until_in_past": _("Choose a time in the future."),
        "leave_order": _("The last day must not be before the first day."),
    }
    return messages.get(exc.code, exc.message)


def _store() -> Store:
    if g.store is None:
        abort(404)
    return g.store


def _filter(queue: bool = False) -> service.TodayFilter:
    store = _store()
    try:
        plan_id = int(request.args.get("plan") or 0) or None
    except ValueError:
        plan_id = None
    return service.TodayFilter(
        store=store,
        assignee=None if queue else current_user.staff,
        plan_id=plan_id,
        q=request.args.get("q", "")[:100],
        region=store.region,
    )


def _today_context(now: datetime) -> dict:
    flt = _filter()
    ctx = {
        "flt": flt,
        "counts": service.today_counts(flt, now),
        "pages": {grp: service.today_page(flt, grp, now, decorate=False) for grp in service.GROUPS},
        "plans": service.plans_with_open_work(flt),
        "queue": None,
        "labels": _outcome_labels(),
    }
    if current_user.role in ("manager", "owner"):
        qflt = _filter(queue=True)
        ctx["queue"] = service.today_page(qflt, "all", now, decorate=False)
        ctx["queue_count"] = sum(service.today_counts(qflt, now).values())
    pages = [*ctx["pages"].values(), ctx["queue"] or service.TodayPage()]
    service.decorate_rows([f for page in pages for f in page.rows], now)
    return ctx


@bp.route("/today")
@login_required
def today():
    """My open follow-ups: overdue, due today, upcoming (and the manager queue for managers)."""
    if g.store is None:
        return render("followups/today.html", "followups/_list.html", flt=None, counts=None)
    ctx = _today_context(clock.now())
    return render("followups/today.html", "followups/_list.html", **ctx)


@bp.route("/today/counts")
@login_required
def counts():
    """The group counts of Today, refreshed after every action."""
    now = clock.now()
    if not is_partial():
        return render("followups/today.html", "followups/_counts.html", **_today_context(now))
    flt = _filter()
    return render(
        "followups/today.html",
        "followups/_counts.html",
        counts=service.today_counts(flt, now),
        flt=flt,
        oob=True,
    )


@bp.route("/today/more")
@login_required
def more():
    """The next rows of one group (keyset pagination)."""
    group = request.args.get("group", "today")
    queue = group == "queue"
    if group not in service.GROUPS and not queue:
        abort(404)
    if queue and current_user.role not in ("manager", "owner"):
        abort(404)
    flt = _filter(queue=queue)
    page = service.today_page(
        flt, "all" if queue else group, clock.now(), cursor=request.args.get("cursor")
    )
    return render("followups/more.html", "followups/_more.html", page=page, group=group, flt=flt)


# --- the follow-up card -----------------------------------------------------------------------


def _followup(followup_id: int) -> FollowUp:
    return permissions.followup_or_404(current_user.staff, followup_id)


def _digits(phone: str | None) -> str:
    return "".join(ch for ch in (phone or "") if ch.isdigit())


def contact_links(phone: str | None, text: str) -> dict[str, str]:
    """Deep links that open each messenger with the client and the script filled in."""
    body = quote(text or "", safe="")
    digits = _digits(phone)
    links = {"line": f"https://line.me/R/msg/text/?{body}", "wechat": "weixin://"}
    if phone:
        links.update(
            call=f"tel:{phone}",
            sms=f"sms:{phone}?&body={body}",
            whatsapp=f"https://wa.me/{digits}?text={body}",
        )
    return links


def _context(f: FollowUp) -> dict:
    """Everything the card shows about the client, in a few bounded queries."""
    customer = Customer.get_by_id(f.customer_id)
    reasons = list(
        FollowUpReason.with_plans()
        .where(FollowUpReason.followup == f.id)
        .order_by(FollowUpReason.id)
    )
    cards = list(
        CustomerCard.select()
        .where(CustomerCard.customer == customer.id, CustomerCard.status == "active")
        .order_by(CustomerCard.expires_on.is_null(), CustomerCard.expires_on)
        .limit(10)
    )
    visits = list(
        Visit.select().where(Visit.customer == customer.id).order_by(Visit.day.desc()).limit(3)
    )
    services = list(
        EventItem.select(EventItem, Event)
        .join(Event)
        .where(EventItem.customer == customer.id)
        .order_by(Event.occurred_at.desc(), EventItem.id.desc())
        .limit(5)
    )
    tags = list(
        Tag.select(Tag.name)
        .join(CustomerTag)
        .where(CustomerTag.customer == customer.id)
        .order_by(Tag.name)
        .limit(20)
    )
    logs = list(
        ContactLog.select(ContactLog, Staff)
        .join(Staff, JOIN.LEFT_OUTER)
        .where(ContactLog.customer == customer.id)
        .order_by(ContactLog.at.desc())
        .limit(5)
    )
    messages = list(
        Message.select()
        .where(Message.customer == customer.id)
        .order_by(Message.created_at.desc())
        .limit(5)
    )
    scripts = [r for r in reasons if r.script and r.script != f.script]
    text = f.script or (reasons[0].script if reasons else "")
    f.merged = max(0, len(reasons) - 1)
    f.fact = service.useful_fact(f, cards, clock.now())
    return {
        "f": f,
        "customer": customer,
        "reasons": reasons,
        "extra_scripts": scripts,
        "script": text,
        "links": contact_links(customer.phone, text),
        "cards": cards,
        "visits": visits,
        "services": services,
        "tags": tags,
        "logs": logs,
        "messages": messages,
        "labels": _outcome_labels(),
        "external_id": f"ui-{uuid.uuid4()}",
        "today_local": service.local_today(_store_of(f), clock.now()),
    }


def _store_of(f: FollowUp) -> Store:
    store = g.store if g.store is not None and g.store.id == f.store_id else None
    return store or Store.get_by_id(f.store_id)


def _version(f: FollowUp) -> str:
    return f.updated_at.isoformat() if f.updated_at else ""


def _in_list() -> bool:
    """Whether the card sits inside Today's list (opened in place) rather than on its own page."""
    if "in_list" in request.values:
        return request.values.get("in_list") == "1"
    return is_partial()


def _render_card(
    f: FollowUp, status: int = 200, errors: dict | None = None, form=None, notice: str = ""
):
    ctx = _context(f)
    ctx["notice"] = notice
    ctx["in_list"] = _in_list()
    ctx.update(errors=errors or {}, form=form or {}, version=_version(f))
    ctx["undo"] = service.can_undo(f, current_user.staff, clock.now())
    ctx["last"] = service.last_log(f) if ctx["undo"] or f.status != "open" else None
    return render("followups/show.html", "followups/_card.html", status=status, **ctx)


@bp.route("/followups/<int:followup_id>")
@login_required
def show(followup_id: int):
    """The follow-up card: why, who, the script, contact buttons and the outcome form."""
    f = _followup(followup_id)
    if is_partial() and request.args.get("view") == "row":
        rows = [f]
        f.customer = Customer.get_by_id(f.customer_id)
        service.decorate_rows(rows, clock.now())
        return render("followups/show.html", "followups/_row.html", f=f, labels=_outcome_labels())
    return _render_card(f)


def _parse_local(store: Store, day: str, at: str = "") -> datetime:
    """A date (and optional HH:MM) typed in the store's timezone, as UTC."""
    d = date.fromisoformat(day.strip())
    t = time.fromisoformat(at.strip()) if at and at.strip() else service._followup_time(store)
    return datetime.combine(d, t, ZoneInfo(store.timezone)).astimezone(ZoneInfo("UTC"))


def _logged(f: FollowUp, entry: ContactLog | None, kept_event=None):
    ctx = {
        "f": f,
        "entry": entry,
        "labels": _outcome_labels(),
        "undo": entry is not None and service.can_undo(f, current_user.staff, clock.now()),
        "seconds": service.UNDO_SECONDS - 5,
        "in_list": _in_list(),
    }
    resp = render("followups/show.html", "followups/_logged.html", **ctx)
    return trigger(resp, "followupLogged")


@bp.route("/followups/<int:followup_id>/log", methods=["POST"])
@login_required
def log(followup_id: int):
    """Log what happened (one tap per outcome); the card leaves Today with an undo."""
    f = _followup(followup_id)
    now = clock.now()
    form = request.form
    store = _store_of(f)
    if form.get("v") and form.get("v") != _version(f):
        last = service.last_log(f)
        if last is not None and service.can_undo(f, current_user.staff, now):
            return _finish_log(f, last)
        return _render_card(
            f, 422, {"outcome": _("This follow-up changed. Please check it again.")}
        )
    outcome = form.get("outcome", "")
    errors: dict[str, str] = {}
    next_at = appointment_at = None
    try:
        if form.get("next_date"):
            next_at = _parse_local(store, form["next_date"])
    except ValueError:
        errors["next_date"] = _("Enter a valid date.")
    try:
        if outcome == "booked" and form.get("appointment_date"):
            appointment_at = _parse_local(
                store, form["appointment_date"], form.get("appointment_time", "")
            )
    except ValueError:
        errors["appointment_date"] = _("Enter a valid date and time.")
    if outcome not in OUTCOME_LABELS:
        errors["outcome"] = _("Choose what happened.")
    if not errors:
        try:
            entry = service.log_outcome(
                f,
                current_user.staff,
                outcome,
                now,
                channel=form.get("channel") or None,
                note=form.get("note", ""),
                next_at=next_at,
                appointment_at=appointment_at,
            )
        except service.FollowUpError as exc:
            key = {"next_at": "next_date"}.get(exc.field, exc.field)
            errors[key] = _error(exc)
        else:
            return _finish_log(f, entry)
    return _render_card(f, 422, errors, form)


def _finish_log(f: FollowUp, entry: ContactLog):
    f = FollowUp.get_by_id(f.id)
    if is_partial():
        return _logged(f, entry)
    flash(_("Saved: %(outcome)s.", outcome=_outcome_labels()[entry.outcome]), "success")
    return redirect(url_for("followups.show", followup_id=f.id))


@bp.route("/followups/<int:followup_id>/undo", methods=["POST"])
@login_required
def undo(followup_id: int):
    """Take back the last log within a few seconds; the follow-up comes back."""
    f = _followup(followup_id)
    try:
        result = service.undo_last_log(f, current_user.staff, clock.now())
    except service.FollowUpError as exc:
        return _render_card(f, 422, {"outcome": _error(exc)})
    f = FollowUp.get_by_id(f.id)
    note = (
        _("Undone. The appointment that was recorded stays in the client's history.")
        if result.get("kept_event")
        else _("Undone.")
    )
    if is_partial():
        return trigger(_render_card(f, notice=note), "followupLogged")
    flash(note, "success")
    return redirect(url_for("followups.show", followup_id=f.id))


@bp.route("/followups/<int:followup_id>/snooze", methods=["POST"])
@login_required
def snooze(followup_id: int):
    """Put the follow-up off: later today, tomorrow, or a chosen date."""
    f = _followup(followup_id)
    now = clock.now()
    store = _store_of(f)
    choice = request.form.get("choice", "")
    quick = service.snooze_choices(store, now)
    until = quick.get(choice)
    if choice == "date":
        try:
            until = _parse_local(store, request.form.get("until_date", ""))
        except ValueError:
            return _render_card(f, 422, {"until": _("Enter a valid date.")}, request.form)
    if until is None:
        return _render_card(f, 422, {"until": _("Choose when.")}, request.form)
    try:
        service.snooze(f, until, now)
    except service.FollowUpError as exc:
        return _render_card(f, 422, {"until": _error(exc)}, request.form)
    if is_partial():
        resp = render(
            "followups/show.html",
            "followups/_logged.html",
            f=f,
            entry=None,
            snoozed=until,
            labels=_outcome_labels(),
            undo=False,
            seconds=5,
            in_list=_in_list(),
        )
        return trigger(resp, "followupLogged")
    flash(_("Snoozed until %(when)s.", when=_fmt(until)), "success")
    return redirect(url_for("followups.today"))


def _fmt(value: datetime) -> str:
    return fmt_datetime(value, "short")


# --- staff on leave ---------------------------------------------------------------------------


def _leave_people() -> list[Staff]:
    """Whose leave I may record: myself, and a manager's store employees."""
    me = current_user.staff
    if me.role == "employee":
        return [me]
    people = (
        Staff.select()
        .join(StaffStore)
        .where(StaffStore.store.in_(permissions.store_ids(me)), Staff.active == True)  # noqa: E712
        .distinct()
        .order_by(Staff.name)
    )
    others = [s for s in people if s.id != me.id and s.role == "employee"]
    return [me, *others]


def _leave_ctx(errors=None, form=None) -> dict:
    people = _leave_people()
    today_local = service.local_today(_store(), clock.now())
    leaves = list(
        StaffLeave.select(StaffLeave, Staff)
        .join(Staff)
        .where(
            StaffLeave.staff.in_([p.id for p in people]),
            StaffLeave.ends_on >= today_local - timedelta(days=30),
        )
        .order_by(StaffLeave.starts_on.desc())
        .limit(50)
    )
    return {
        "people": people,
        "leaves": leaves,
        "errors": errors or {},
        "form": form or {},
        "today_local": today_local,
    }


@bp.route("/leave", methods=["GET", "POST"])
@login_required
def leave():
    """Mark days off; follow-ups due then go to colleagues and come back on return."""
    if request.method == "GET":
        return render("followups/leave.html", "followups/_leave.html", **_leave_ctx())
    form = request.form
    errors: dict[str, str] = {}
    people = {p.id: p for p in _leave_people()}
    try:
        staff = people[int(form.get("staff") or current_user.id)]
    except (KeyError, ValueError):
        abort(404)
    try:
        starts_on = date.fromisoformat(form.get("starts_on", "").strip())
    except ValueError:
        errors["starts_on"] = _("Enter a valid date.")
    try:
        ends_on = date.fromisoformat((form.get("ends_on") or form.get("starts_on", "")).strip())
    except ValueError:
        errors["ends_on"] = _("Enter a valid date.")
    if not errors:
        try:
            service.add_leave(staff, starts_on, ends_on, form.get("note", ""), clock.now())
        except service.FollowUpError as exc:
            errors[exc.field] = _error(exc)
    if errors:
        return render(
            "followups/leave.html", "followups/_leave.html", 422, **_leave_ctx(errors, form)
        )
    if is_partial():
        return render("followups/leave.html", "followups/_leave.html", **_leave_ctx())
    flash(_("Leave saved."), "success")
    return redirect(url_for("followups.leave"))


@bp.route("/leave/<int:leave_id>/delete", methods=["POST"])
@login_required
def cancel_leave(leave_id: int):
    """Remove days off (the handed-over follow-ups come back)."""
    entry = StaffLeave.get_or_none(StaffLeave.id == leave_id)
    if entry is None or entry.staff_id not in {p.id for p in _leave_people()}:
        abort(404)
    service.cancel_leave(entry, clock.now())
    if is_partial():
        return render("followups/leave.html", "followups/_leave.html", **_leave_ctx())
    flash(_("Leave removed."), "success")
    return redirect(url_for("followups.leave"))
