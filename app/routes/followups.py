"""The staff area: Today's follow-ups."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, g
from flask_login import current_user, login_required
from peewee import JOIN

from app import clock
from app.htmx import render
from app.models import Customer, FollowUp, Plan

bp = Blueprint("followups", __name__)


def _today_bounds(tz: str) -> tuple[datetime, datetime]:
    now = clock.now()
    local = now.astimezone(ZoneInfo(tz)).date()
    start = datetime.combine(local, time(0), ZoneInfo(tz))
    return start, start + timedelta(days=1)


@bp.route("/today")
@login_required
def today():
    """My open follow-ups: overdue, due today, upcoming."""
    tz = g.store.timezone if g.store else "UTC"
    start, end = _today_bounds(tz)
    rows = list(
        FollowUp.select(FollowUp, Customer, Plan)
        .join(Customer)
        .switch(FollowUp)
        .join(Plan, join_type=JOIN.LEFT_OUTER)
        .where(FollowUp.assignee == current_user.id, FollowUp.status == "open")
        .order_by(FollowUp.due_at)
        .limit(200)
    )
    groups = {
        "overdue": [f for f in rows if f.due_at < start],
        "today": [f for f in rows if start <= f.due_at < end],
        "upcoming": [f for f in rows if f.due_at >= end],
    }
    return render("followups/today.html", "followups/_list.html", groups=groups)
