"""Periodic and on-demand jobs: thin wrappers over services, safe to rerun."""

import logging

from huey import crontab

from app import clock
from app.tasks.queue import db_job, huey

log = logging.getLogger(__name__)


@huey.periodic_task(crontab(minute="*"), retries=0)
@huey.lock_task("revisit-tick")
@db_job
def tick():
    """Every minute: do everything due now (the same code as `revisit tick`)."""
    from app.services import scheduler

    summary = scheduler.tick(now=clock.now())
    log.info("%s", summary.line(clock.now()))
    return summary.line(clock.now())


@huey.task(retries=2, retry_delay=30)
@db_job
def run_occurrence(occurrence_id: int):
    """Run (or finish) one occurrence now; a rerun adds nothing."""
    from app.models import Occurrence
    from app.services import engine

    occurrence = Occurrence.get_or_none(Occurrence.id == occurrence_id)
    if occurrence is None or occurrence.status in ("done", "missed"):
        return 0
    return engine.run_occurrence(occurrence, clock.now())


@huey.task(retries=2, retry_delay=10)
@db_job
def react_to_event(event_id: int):
    """Re-apply an event's withdrawals and conversions (e.g. after an import); idempotent."""
    from app.models import Event
    from app.services import engine

    event = Event.get_or_none(Event.id == event_id)
    if event is not None:
        engine.react_to_event(event, clock.now())


@huey.periodic_task(crontab(minute="20", hour="18"), retries=0)
@huey.lock_task("revisit-loyalty-daily")
@db_job
def run_loyalty_upkeep():
    """Nightly (idempotent): expire coupons and points whose time has come, recompute tiers."""
    from app.services import loyalty

    return loyalty.run_due(clock.now())


# Importing these registers their jobs with the consumer.
from app.tasks import (  # noqa: E402
    import_jobs,  # noqa: F401
    messaging_jobs,  # noqa: F401
    report_jobs,  # noqa: F401
    template_jobs,  # noqa: F401
)
