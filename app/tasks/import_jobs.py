"""Import jobs: check and run uploaded imports in batches, resume the ones whose worker died,
and remove old uploaded files."""

import logging

from huey import crontab

from app import clock
from app.tasks.queue import db_job, huey

log = logging.getLogger(__name__)


@huey.task(retries=0)
@db_job
def check_import(job_id: str) -> str:
    """Dry-run one import's file with its mapping (the validation summary); safe to rerun."""
    from app.services import import_jobs

    job = import_jobs.check(job_id, clock.now(), clock_now=clock.now)
    log.info("import %s check: %s", job_id, job.get("state"))
    return job.get("state", "")


@huey.task(retries=0)
@db_job
def run_import(job_id: str) -> str:
    """Run (or resume after its last committed batch) one queued import; safe to rerun."""
    from app.services import import_jobs

    job = import_jobs.run(job_id, clock.now(), clock_now=clock.now)
    log.info("import %s: %s", job_id, job.get("state"))
    return job.get("state", "")


@huey.periodic_task(crontab(minute="*"), retries=0)
@huey.lock_task("revisit-resume-imports")
@db_job
def resume_stale_imports() -> list[str]:
    """Every minute: start again the imports and checks whose heartbeat is two minutes old."""
    from app.services import import_jobs

    now = clock.now()
    stale = import_jobs.stale_jobs(now)
    for job_id in stale:
        if (import_jobs.read_job(job_id) or {}).get("state") == import_jobs.CHECKING:
            import_jobs.write_job(job_id, heartbeat=now.isoformat())
            check_import(job_id)
        else:
            import_jobs.queue(job_id, now)
            run_import(job_id)
    if stale:
        log.warning("resumed stale imports: %s", len(stale))
    return stale


@huey.periodic_task(crontab(minute="17", hour="3"), retries=0)
@huey.lock_task("revisit-purge-import-files")
@db_job
def purge_import_files() -> list[str]:
    """Nightly: remove the uploaded files of imports older than the configured days."""
    from app.services import import_jobs

    purged = import_jobs.purge_old_files(clock.now())
    if purged:
        log.info("removed the files of %s old imports", len(purged))
    return purged
