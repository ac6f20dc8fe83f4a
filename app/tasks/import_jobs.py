"""Import jobs: run an uploaded import in batches, and resume the ones whose worker died."""

import logging

from huey import crontab

from app import clock
from app.tasks.queue import db_job, huey

log = logging.getLogger(__name__)


@huey.task(retries=0)
@db_job
def run_import(job_id: str) -> str:
    """Run (or resume from its last saved row) one queued import; safe to rerun."""
    from app.services import import_jobs

    job = import_jobs.run(job_id, clock.now(), clock_now=clock.now)
    log.info("import %s: %s", job_id, job.get("state"))
    return job.get("state", "")


@huey.periodic_task(crontab(minute="*"), retries=0)
@huey.lock_task("revisit-resume-imports")
@db_job
def resume_stale_imports() -> list[str]:
    """Every minute: queue again the imports whose heartbeat is older than two minutes."""
    from app.services import import_jobs

    now = clock.now()
    stale = import_jobs.stale_jobs(now)
    for job_id in stale:
        import_jobs.queue(job_id, now)
        run_import(job_id)
    if stale:
        log.warning("resumed stale imports: %s", len(stale))
    return stale
