"""Outbox jobs: send one message now, and settle interrupted sends periodically."""

import logging

from huey import crontab

from app import clock
from app.tasks.queue import db_job, huey

log = logging.getLogger(__name__)


@huey.task(retries=0)
@db_job
def send_message(message_id: int) -> str:
    """Send one queued message now (within quiet hours, rate limit and quota); safe to rerun."""
    from app.services import messaging

    outcome = messaging.send_message(message_id, clock.now())
    log.info("message %s: %s", message_id, outcome)
    return outcome


@huey.periodic_task(crontab(minute="*/5"), retries=0)
@huey.lock_task("revisit-reconcile-outbox")
@db_job
def reconcile_outbox() -> dict:
    """Every 5 minutes: settle messages stuck in `sending` past their lease."""
    from app.services import messaging

    result = messaging.reconcile(clock.now())
    if result:
        log.warning("outbox reconcile: %s", result)
    return result
