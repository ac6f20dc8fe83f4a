"""Import jobs: an uploaded file and its state (JSON, written atomically) under instance/imports/<id>/."""

import json
import os
import re
import secrets
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from app import config
from app.models import Staff, Store
from app.services import importing

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{20,40}$")
STALE_AFTER = timedelta(minutes=2)
ACTIVE = ("queued", "running")
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


def check(job_id: str, mapping: dict, encoding: str | None, options: dict, now: datetime) -> dict:
    """Dry-run the whole file with this mapping; keep and answer what would happen."""
    job = read_job(job_id)
    table = load_table(job, encoding)
    store = Store.get_by_id(job["store"])
    report = importing.import_rows(
        job["kind"],
        store,
        table,
        mapping,
        now,
        importing.ImportOptions(
            create_tags=options["create_tags"],
            triggers_plans=False,
            dry_run=True,
            staff=_staff(job),
        ),
    )
    summary = report.to_dict()
    summary["errors"] = summary["errors"][:20]
    return write_job(
        job_id,
        state="checked",
        encoding=encoding,
        mapping=mapping,
        options=options,
        total=len(table),
        check=summary,
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


def run(job_id: str, now: datetime, clock_now=None, should_cancel=None) -> dict:
    """Run (or resume from next_row) a queued job, saving progress after every batch."""
    job = read_job(job_id)
    if job is None or job["state"] not in ACTIVE:
        return job or {}
    clock_now = clock_now or (lambda: now)
    table = load_table(job)
    store = Store.get_by_id(job["store"])
    base = dict(job.get("totals") or _zero())
    start = int(job.get("next_row") or 0)
    rejected_file = job_dir(job_id) / "rejected.jsonl"
    seen = {"errors": 0, "landed": 0}
    job = write_job(job_id, state="running", total=len(table), heartbeat=clock_now().isoformat())

    def stop() -> bool:
        if cancel_marker(job_id).exists():
            return True
        return bool(should_cancel and should_cancel())

    def on_batch(report: importing.ImportReport) -> None:
        new_errors = report.errors[seen["errors"] :]
        if new_errors:
            with rejected_file.open("a", encoding="utf-8") as out:
                for e in new_errors:
                    record = {"line": e.line, "field": e.field, "message": e.message, "raw": e.raw}
                    out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        seen["errors"] = len(report.errors)
        landed = _merge_ranges(
            read_job(job_id).get("landed") or [], report.landed[seen["landed"] :]
        )
        seen["landed"] = len(report.landed)
        totals = {k: base[k] + getattr(report, k) for k in base}
        write_job(
            job_id,
            next_row=report.next_row,
            totals=totals,
            landed=landed,
            heartbeat=clock_now().isoformat(),
        )

    options = importing.ImportOptions(
        create_tags=job["options"]["create_tags"],
        triggers_plans=job["options"]["triggers_plans"],
        resume_from=start,
        should_cancel=stop,
        on_batch=on_batch,
        staff=_staff(job),
    )
    try:
        report = importing.import_rows(job["kind"], store, table, job["mapping"], now, options)
    except Exception as exc:
        write_job(job_id, state="failed", error=exc.__class__.__name__)
        raise
    if report.cancelled:
        return write_job(job_id, state="cancelled", cancelled=True)
    return write_job(job_id, state="done", finished_at=clock_now().isoformat())


def rejected_rows(job: dict) -> list[dict]:
    """The rejected rows of a job's committed batches, each once, in file order."""
    path = job_dir(job["id"]) / "rejected.jsonl"
    if not path.exists():
        return []
    limit = _line_limit(job)
    seen, rows = set(), []
    with path.open(encoding="utf-8") as lines:
        for text in lines:
            try:
                record = json.loads(text)
            except ValueError:
                continue
            key = (record["line"], record["field"], record["message"])
            if key in seen or (limit is not None and record["line"] > limit):
                continue
            seen.add(key)
            rows.append(record)
    rows.sort(key=lambda r: r["line"])
    return rows


def _line_limit(job: dict) -> int | None:
    """The last file line of the committed batches (rows past it are not yet imported)."""
    if job.get("state") == "done":
        return None
    next_row = int(job.get("next_row") or 0)
    if next_row <= 0:
        return 0
    try:
        table = load_table(job)
    except ValueError:
        return None
    return table.lines[next_row - 1] if next_row <= len(table.lines) else None


def rejected_csv(job: dict) -> str:
    """The rejected rows with their reason, formula-safe, ready to fix and upload again."""
    report = importing.ImportReport(kind=job["kind"], total=job.get("total") or 0)
    try:
        report.headers = load_table(job).headers
    except ValueError:
        report.headers = []
    for record in rejected_rows(job):
        report.errors.append(
            importing.RowError(record["line"], record["field"], record["message"], record["raw"])
        )
    return report.rejected_csv()


def progress(job: dict) -> int:
    """Percent of the rows processed."""
    total = job.get("total") or 0
    if job.get("state") == "done":
        return 100
    return int(100 * (job.get("next_row") or 0) / total) if total else 0


def is_stale(job: dict, now: datetime) -> bool:
    """True for a queued or running job whose worker has not reported for two minutes."""
    if job.get("state") not in ACTIVE or not job.get("heartbeat"):
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


def delete_job(job_id: str) -> None:
    """Remove a job and its file."""
    shutil.rmtree(job_dir(job_id), ignore_errors=True)
