"""Report and tagging jobs: render a PDF report, Monday 08:00 e-mails, nightly tag rules,
nightly recount of recent return visits."""

import contextlib
import logging
import os

from huey import crontab

from app import clock
from app.tasks.queue import db_job, huey

log = logging.getLogger(__name__)


@contextlib.contextmanager
def app_context():
    """The current app context, or a fresh app's when run by the worker."""
    from flask import has_app_context

    if has_app_context():
        yield
        return
    from app import create_app

    with create_app().app_context():
        yield


@huey.task(retries=1, retry_delay=30)
@db_job
def render_report(report_id: str):
    """Render one queued PDF report (status in instance/reports/<id>.json)."""
    from app.services import pdf

    with app_context():
        return str(pdf.build_report(report_id, clock.now()))


@huey.periodic_task(crontab(minute="5"), retries=0)
@huey.lock_task("revisit-weekly-reports")
@db_job
def weekly_reports():
    """Hourly: mail last week's report to managers of stores where it is Monday 08:xx."""
    from flask import current_app

    from app.services import pdf

    with app_context():
        smtp_url = current_app.config.get("SMTP_URL") or os.environ.get("SMTP_URL")
        sender = current_app.config.get("REPORT_FROM") or "reports@revisit.local"
        sent = pdf.mail_weekly_reports(clock.now(), smtp_url, sender)
    log.info("weekly reports mailed: %s", sent)
    return sent


def _stores_at_local_hour(now, hour: int):
    """Active stores where it is `hour`:xx local time at `now`."""
    from zoneinfo import ZoneInfo

    from app.models import Store

    for store in Store.select().where(Store.active == True):  # noqa: E712
        if now.astimezone(ZoneInfo(store.timezone)).hour == hour:
            yield store


@huey.periodic_task(crontab(minute="30", hour="*"), retries=0)
@huey.lock_task("revisit-tag-rules")
@db_job
def nightly_tag_rules():
    """Hourly: run tag rules for every store where it is 02:xx local time (once a night)."""
    from app.services import tagging

    now = clock.now()
    return {store.key: tagging.run_rules(store, now) for store in _stores_at_local_hour(now, 2)}


@huey.periodic_task(crontab(minute="40", hour="*"), retries=0)
@huey.lock_task("revisit-return-recount")
@db_job
def nightly_return_recount():
    """Hourly: recount recent contacts' return visits for stores where it is 03:xx local time."""
    from app.services import reports

    now = clock.now()
    return {
        store.key: reports.recount_recent_returns(store, now)
        for store in _stores_at_local_hour(now, 3)
    }
