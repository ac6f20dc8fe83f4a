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
    log.info("tick: %s", summary)
    return summary
