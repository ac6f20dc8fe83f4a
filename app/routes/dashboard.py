"""The manager's dashboard."""

from datetime import timedelta

from flask import Blueprint, g
from peewee import fn

from app import clock
from app.htmx import render
from app.models import Customer, FollowUp, Message, Plan
from app.services.permissions import manager_required

bp = Blueprint("dashboard", __name__)


@bp.route("/dashboard")
@manager_required
def index():
    """Headline figures for the current store."""
    stats = {}
    if g.store is not None:
        now = clock.now()
        fu = FollowUp.select().where(FollowUp.store == g.store.id)
        stats = {
            "customers": Customer.select().where(Customer.store == g.store.id).count(),
            "active_plans": Plan.select()
            .where(Plan.store == g.store.id, Plan.status == "active")
            .count(),
            "open": fu.where(FollowUp.status == "open").count(),
            "overdue": fu.where(FollowUp.status == "open", FollowUp.due_at < now).count(),
            "done_7d": fu.where(
                FollowUp.status == "done", FollowUp.completed_at >= now - timedelta(days=7)
            ).count(),
            "messages_7d": Message.select()
            .where(Message.store == g.store.id, Message.created_at >= now - timedelta(days=7))
            .count(),
        }
        per_staff = (
            FollowUp.select(
                FollowUp.assignee,
                fn.SUM(FollowUp.status == "open").alias("open"),
                fn.SUM(FollowUp.status == "done").alias("done"),
            )
            .where(FollowUp.store == g.store.id)
            .group_by(FollowUp.assignee)
        )
        stats["per_staff"] = list(per_staff)
    return render("dashboard/index.html", "dashboard/_stats.html", stats=stats)
