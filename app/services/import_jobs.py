"""Import jobs: an uploaded file and its state (JSON, written atomically) under instance/imports/<id>/."""

import json
import logging
import os
import re
import secrets
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from app import config
from app.models import ImportBatch, Staff, Store
from app.services import importing
from app.services.validation import ValidationError

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{20,40}$")
STALE_AFTER = timedelta(minutes=2)
ACTIVE = ("queued", "running")
CHECKING = "checking"
UPLOAD_SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx", ".xlsm")


def jobs_dir() -> Path:
    """Where import jobs are kept."""
    return config.instance_dir() / "imports"


def job_dir(job_id: str) -> Path:
    """The folder of one job (ValueError for an id that is not one of ours)."""
    if not JOB_ID.match(job_id or ""):
        raise ValueError("bad import id")
    return jobs_dir() / job_id


def upload_path(job: dict) -> Path:
    """The uploaded file of a job."""
    return job_dir(job["id"]) / ("upload" + job["suffix"])


def read_job(job_id: str) -> dict | None:
    """A job's state, or None when there is no such job."""
    try:
        return json.loads((job_dir(job_id) / "job.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def write_job(job_id: str, **fields) -> dict:
    """Merge fields into a job's state and write it atomically (os.replace)."""
    folder = job_dir(job_id)
    job = read_job(job_id) or {}
    job.update(fields)
    tmp = folder / f"job.json.{secrets.token_hex(4)}.tmp"
    tmp.write_text(json.dumps(job, ensure_ascii=False, default=str))
    os.replace(tmp, folder / "job.json")
    return job


def create_job(
    store: Store, staff: Staff | None, kind: str, filename: str, data: bytes, now: datetime
) -> str:
    """Keep an uploaded file as a new job (state `uploaded`); answer its unguessable id."""
    job_id = secrets.token_urlsafe(18)
    folder = job_dir(job_id)
    folder.mkdir(parents=True)
    suffix = Path(filename or "").suffix.lower()
    suffix = suffix if suffix in UPLOAD_SUFFIXES else ".csv"
    (folder / ("upload" + suffix)).write_bytes(data)
    write_job(
        job_id,
        id=job_id,
        store=store.id,
        staff=staff.id if staff else None,
        kind=kind,
        filename=os.path.basename(filename or "upload.csv")[:200],
        suffix=suffix,
        size=len(data),
        state="uploaded",
        encoding=None,
        mapping=None,
        options={"create_tags": True, "triggers_plans": kind != "events"},
        created_at=now.isoformat(),
        totals=_zero(),
        next_row=0,
        total=0,
        landed=[],
        tags_created={},
        heartbeat=None,
    )
    return job_id


def _zero() -> dict:
    return {"created": 0, "updated": 0, "unchanged": 0, "merged": 0, "rejected": 0}


def load_table(job: dict, encoding: str | None = None) -> importing.Table:
    """Read a job's file (with the encoding chosen for it, else detected)."""
    chosen = encoding if encoding is not None else job.get("encoding")
    return importing.read_table(upload_path(job), job["filename"], encoding=chosen or None)


def store_jobs(store_id: int, limit: int = 10) -> list[dict]:
    """The latest jobs of a store, newest first."""
    if not jobs_dir().exists():
        return []
    jobs = []
    for folder in jobs_dir().iterdir():
        job = read_job(folder.name) if JOB_ID.match(folder.name) else None
        if job and job.get("store") == store_id:
            jobs.append(job)
    jobs.sort(key=lambda j: j.get("created_at") or "", reverse=True)
    return jobs[:limit]


def start_check(
    job_id: str, mapping: dict, encoding: str | None, options: dict, now: datetime
) -> dict:
    """Keep the mapping and mark the job as waiting for its check (a dry run in the worker)."""
    return write_job(
        job_id,
        state="checking",
        encoding=encoding,
        mapping=mapping,
        options=options,
        check=None,
        check_error=None,
        check_next_row=0,
        heartbeat=now.isoformat(),
    )


def check(job_id: str, now: datetime, clock_now=None) -> dict:
    """Dry-run the whole file with the job's mapping, saving progress; keep what would happen."""
    job = read_job(job_id)
    if job is None or job.get("state") != "checking":
        return job or {}
    clock_now = clock_now or (lambda: now)
    try:
        table = load_table(job)
        write_job(job_id, total=len(table), headers=table.headers)

        def progress(done: int, total: int) -> None:
            write_job(job_id, check_next_row=done, heartbeat=clock_now().isoformat())

        report = importing.import_rows(
            job["kind"],
            Store.get_by_id(job["store"]),
            table,
            job["mapping"],
            now,
            importing.ImportOptions(
                create_tags=job["options"]["create_tags"],
                triggers_plans=False,
                dry_run=True,
                staff=_staff(job),
                on_progress=progress,
            ),
        )
    except (ValueError, ValidationError) as exc:
        log.warning("import %s: check failed: %s", job_id, exc)
        return write_job(job_id, state="uploaded", check_error=exc.__class__.__name__)
    summary = report.to_dict()
    summary["errors"] = summary["errors"][:20]
    return write_job(
        job_id, state="checked", check=summary, check_next_row=len(table), heartbeat=None
    )


def _staff(job: dict) -> Staff | None:
    return Staff.get_or_none(Staff.id == job["staff"]) if job.get("staff") else None


def queue(job_id: str, now: datetime) -> dict:
    """Mark a checked, cancelled or stale job as waiting for the worker."""
    cancel_marker(job_id).unlink(missing_ok=True)
    return write_job(job_id, state="queued", heartbeat=now.isoformat(), cancelled=False)


def cancel_marker(job_id: str) -> Path:
    """The file whose presence asks a running job to stop after its current batch."""
    return job_dir(job_id) / "cancel"


def request_cancel(job_id: str) -> None:
    """Ask the job to stop after its current batch (a file, so no write races the worker)."""
    cancel_marker(job_id).touch()


def _merge_ranges(ranges: list, lines: list[int]) -> list:
    """Landed lines as sorted [first, last] ranges."""
    points = sorted(lines)
    merged = [list(r) for r in ranges]
    for line in points:
        if merged and merged[-1][0] <= line <= merged[-1][1]:
            continue
        if merged and line == merged[-1][1] + 1:
            merged[-1][1] = line
        else:
            merged.append([line, line])
    merged.sort()
    out: list = []
    for first, last in merged:
        if out and first <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], last)
        else:
            out.append([first, last])
    return out


def committed_batches(job_id: str) -> list[ImportBatch]:
    """The job's batches that committed, in file order (written in each batch's transaction)."""
    return list(
        ImportBatch.select().where(ImportBatch.job == job_id).order_by(ImportBatch.first_row)
    )


def committed_state(job_id: str) -> dict:
    """Totals, landed lines, tags created, resume row and carried state, exactly as the
    database has them."""
    totals, landed, carries, next_row, tags = _zero(), [], [], 0, {}
    for batch in committed_batches(job_id):
        if batch.first_row != next_row:
            break  # a gap cannot happen with one writer; resume from the first missing row
        for key in totals:
            totals[key] += int(batch.counts.get(key, 0))
        landed = _merge_ranges(
            landed, [line for first, last in batch.landed for line in range(first, last + 1)]
        )
        carries.append(batch.carry or {})
        importing.add_tag_counts(tags, batch.tags_created or {})
        next_row = batch.end_row
    carry = importing.merge_carries(carries)
    carry["tags_created"] = sorted(tags)
    return {
        "totals": totals,
        "landed": landed,
        "tags_created": tags,
        "next_row": next_row,
        "carry": carry,
    }


def run(job_id: str, now: datetime, clock_now=None, should_cancel=None) -> dict:
    """Run (or resume after the last committed batch) a queued job, saving progress per batch."""
    job = read_job(job_id)
    if job is None or job["state"] not in ACTIVE:
        return job or {}
    clock_now = clock_now or (lambda: now)
    table = load_table(job)
    store = Store.get_by_id(job["store"])
    committed = committed_state(job_id)
    base, base_landed = committed["totals"], committed["landed"]
    base_tags = committed["tags_created"]
    seen = {"landed": 0}
    job = write_job(
        job_id,
        state="running",
        total=len(table),
        headers=table.headers,
        next_row=committed["next_row"],
        totals=base,
        landed=base_landed,
        tags_created=base_tags,
        heartbeat=clock_now().isoformat(),
    )

    def stop() -> bool:
        if cancel_marker(job_id).exists():
            return True
        return bool(should_cancel and should_cancel())

    def record(partial: importing.ImportReport, begin: int, end: int, carry: dict) -> None:
        ImportBatch.insert(
            store=store.id,
            job=job_id,
            first_row=begin,
            end_row=end,
            counts={k: getattr(partial, k) for k in _zero()},
            landed=_merge_ranges([], partial.landed),
            errors=[
                {"line": e.line, "field": e.field, "message": e.message, "raw": e.raw}
                for e in partial.errors
            ],
            carry=carry,
            at=clock_now(),
            tags_created=partial.tags_created,
        ).execute()

    def on_batch(report: importing.ImportReport) -> None:
        base_landed[:] = _merge_ranges(base_landed, report.landed[seen["landed"] :])
        seen["landed"] = len(report.landed)
        write_job(
            job_id,
            next_row=report.next_row,
            totals={k: base[k] + getattr(report, k) for k in base},
            landed=base_landed,
            tags_created=importing.add_tag_counts(dict(base_tags), report.tags_created),
            heartbeat=clock_now().isoformat(),
        )

    options = importing.ImportOptions(
        create_tags=job["options"]["create_tags"],
        triggers_plans=job["options"]["triggers_plans"],
        batch_size=int(job.get("batch_size") or importing.BATCH_SIZE),
        resume_from=committed["next_row"],
        carry=committed["carry"],
        should_cancel=stop,
        on_batch=on_batch,
        on_commit=record,
        staff=_staff(job),
    )
    try:
        report = importing.import_rows(job["kind"], store, table, job["mapping"], now, options)
    except Exception as exc:
        write_job(job_id, state="failed", error=exc.__class__.__name__)
        raise
    if report.cancelled:
        return write_job(job_id, state="cancelled", cancelled=True)
    final = committed_state(job_id)
    ImportBatch.update(carry={}).where(ImportBatch.job == job_id).execute()
    return write_job(
        job_id,
        state="done",
        totals=final["totals"],
        landed=final["landed"],
        tags_created=final["tags_created"],
        next_row=final["next_row"],
        finished_at=clock_now().isoformat(),
    )


def rejected_rows(job: dict) -> list[dict]:
    """The rejected rows of the job's committed batches, in file order."""
    rows = []
    for batch in committed_batches(job["id"]):
        rows.extend(batch.errors)
    rows.sort(key=lambda r: r["line"])
    return rows


def rejected_csv(job: dict) -> str:
    """The rejected rows with their reason, formula-safe, ready to fix and upload again."""
    report = importing.ImportReport(kind=job["kind"], total=job.get("total") or 0)
    report.headers = list(job.get("headers") or [])
    for record in rejected_rows(job):
        report.errors.append(
            importing.RowError(record["line"], record["field"], record["message"], record["raw"])
        )
    return report.rejected_csv()


def progress(job: dict) -> int:
    """Percent of the rows processed (checked, while the check runs)."""
    total = job.get("total") or 0
    if job.get("state") == "done":
        return 100
    done = job.get("check_next_row") if job.get("state") == CHECKING else job.get("next_row")
    return int(100 * (done or 0) / total) if total else 0


def is_stale(job: dict, now: datetime) -> bool:
    """True for a queued, running or checking job whose worker has not reported for two minutes."""
    if job.get("state") not in (*ACTIVE, CHECKING) or not job.get("heartbeat"):
        return False
    return datetime.fromisoformat(job["heartbeat"]) < now - STALE_AFTER


def stale_jobs(now: datetime) -> list[str]:
    """Ids of jobs whose worker seems to have died."""
    if not jobs_dir().exists():
        return []
    found = []
    for folder in jobs_dir().iterdir():
        job = read_job(folder.name) if JOB_ID.match(folder.name) else None
        if job and is_stale(job, now):
            found.append(job["id"])
    return found


def file_days() -> int:
    """How many days an import's uploaded file is kept (REVISIT_IMPORT_FILE_DAYS, default 30)."""
    try:
        return max(1, int(os.environ.get("REVISIT_IMPORT_FILE_DAYS", "30")))
    except ValueError:
        return 30


def purge_old_files(now: datetime, days: int | None = None) -> list[str]:
    """Remove the uploaded files of imports not running and older than `days`; keep the record,
    the report and the rejected rows (they live in the database)."""
    if not jobs_dir().exists():
        return []
    cutoff = now - timedelta(days=days or file_days())
    purged = []
    for folder in jobs_dir().iterdir():
        job = read_job(folder.name) if JOB_ID.match(folder.name) else None
        if job is None or job.get("purged_at") or job.get("state") in (*ACTIVE, CHECKING):
            continue
        stamp = job.get("finished_at") or job.get("created_at")
        if not stamp or datetime.fromisoformat(stamp) >= cutoff:
            continue
        for name in ("upload" + job.get("suffix", ".csv"), "rejected.jsonl", "cancel"):
            (folder / name).unlink(missing_ok=True)
        ImportBatch.update(carry={}).where(ImportBatch.job == job["id"]).execute()
        write_job(job["id"], purged_at=now.isoformat())
        purged.append(job["id"])
    return purged


def delete_job(job_id: str) -> None:
    """Remove a job and its file."""
    shutil.rmtree(job_dir(job_id), ignore_errors=True)
