"""Message template jobs: ask WhatsApp about templates still waiting for Meta's approval."""

import logging

from huey import crontab

from app import clock
from app.tasks.queue import db_job, huey

log = logging.getLogger(__name__)


@huey.periodic_task(crontab(minute="15"), retries=0)
@huey.lock_task("revisit-template-status")
@db_job
def refresh_whatsapp_templates():
    """Hourly: refresh the approval status of WhatsApp templates that are still pending."""
    from app.services import message_templates
    from app.tasks.report_jobs import app_context

    with app_context():
        changes = message_templates.refresh_pending(clock.now())
    log.info("template statuses changed: %s", len(changes))
    return changes
