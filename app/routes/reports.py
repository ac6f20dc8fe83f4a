"""Weekly PDF reports: ask for one, watch its progress, download it."""

from datetime import date, timedelta

from flask import Blueprint, abort, g, request, send_file
from flask_babel import gettext as _

from app import clock
from app.htmx import render
from app.services import pdf, permissions, schedule
from app.services.permissions import manager_required

bp = Blueprint("reports", __name__)


def _day(value) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _visible(report_id: str) -> dict:
    """A report's status if it belongs to a store the viewer manages, else 404."""
    from flask_login import current_user

    try:
        status = pdf.read_status(report_id)
    except ValueError:
        abort(404)
    if status is None or status.get("store") not in permissions.store_ids(current_user.staff):
        abort(404)
    return status


@bp.route("/reports")
@manager_required
def index():
    """Choose a period (last week by default) and generate its PDF."""
    if g.store is None:
        abort(404)
    now = clock.now()
    first, last = pdf.previous_week(g.store, now)
    first = _day(request.args.get("start")) or first
    last = _day(request.args.get("end")) or last
    return render(
        "reports/index.html",
        "reports/_form.html",
        first=first,
        last=last,
        store=g.store,
        errors={},
        this_week=schedule.local_date(now, g.store.timezone) - timedelta(days=6),
    )


@bp.route("/reports", methods=["POST"])
@manager_required
def create():
    """Queue a report for the period; answer the progress fragment."""
    if g.store is None:
        abort(404)
    first, last = _day(request.form.get("start")), _day(request.form.get("end"))
    errors = {}
    if first is None:
        errors["start"] = _("Enter the first day.")
    if last is None:
        errors["end"] = _("Enter the last day.")
    if first and last and last < first:
        errors["end"] = _("The last day must not be before the first day.")
    if first and last and (last - first).days > 366:
        errors["end"] = _("Choose a period of at most a year.")
    if errors:
        return render(
            "reports/index.html",
            "reports/_form.html",
            status=422,
            first=first,
            last=last,
            store=g.store,
            errors=errors,
        )
    from app.tasks.report_jobs import render_report

    report_id = pdf.new_report(g.store, first, last, clock.now())
    render_report(report_id)
    status = pdf.read_status(report_id)
    return render(
        "reports/status.html",
        "reports/_status.html",
        status=201,
        report_id=report_id,
        s=status,
        store=g.store,
    )


@bp.route("/reports/<report_id>/status")
@manager_required
def status(report_id: str):
    """The progress fragment (htmx polls it until the PDF is ready)."""
    s = _visible(report_id)
    return render("reports/status.html", "reports/_status.html", report_id=report_id, s=s)


@bp.route("/reports/<report_id>.pdf")
@manager_required
def download(report_id: str):
    """The generated PDF."""
    s = _visible(report_id)
    if s.get("state") != "done":
        abort(404)
    name = f"revisit-report-{s['first']}-{s['last']}.pdf"
    return send_file(pdf.pdf_path(report_id), mimetype="application/pdf", download_name=name)
