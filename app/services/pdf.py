"""PDF rendering with WeasyPrint; only the app's own static files may be fetched."""

import json
import os
import re
import secrets
import smtplib
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlparse
from zoneinfo import ZoneInfo

from weasyprint import HTML
from weasyprint.urls import URLFetcher

from app import config
from app.models import Staff, StaffStore, Store
from app.services import reports, schedule
from app.services.channels.email import parse_smtp_url

STATIC_DIR = (Path(__file__).resolve().parent.parent / "static").resolve()


class StaticOnlyFetcher(URLFetcher):
    """Fetch file:// URLs inside the static folder; refuse everything else."""

    def fetch(self, url, headers=None):
        """Answer a static file, or raise ValueError (WeasyPrint then skips the resource)."""
        parsed = urlparse(url)
        if parsed.scheme != "file":
            raise ValueError(f"refused (not a static file): {url[:100]}")
        path = Path(unquote(parsed.path)).resolve()
        if not path.is_relative_to(STATIC_DIR) or not path.is_file():
            raise ValueError(f"refused (outside the static folder): {url[:100]}")
        return super().fetch(url, headers)


def render_pdf(html: str) -> bytes:
    """The PDF of an HTML document; relative URLs resolve against the static folder."""
    document = HTML(
        string=html, base_url=STATIC_DIR.as_uri() + "/", url_fetcher=StaticOnlyFetcher()
    )
    return document.write_pdf()


# --- the weekly report ------------------------------------------------------------------------

REPORT_ID = re.compile(r"^[a-z0-9-]{6,80}$")


def report_dir() -> Path:
    """instance/reports (created on demand)."""
    path = config.instance_dir() / "reports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _status_path(report_id: str) -> Path:
    if not REPORT_ID.match(report_id):
        raise ValueError("bad report id")
    return report_dir() / f"{report_id}.json"


def pdf_path(report_id: str) -> Path:
    """Where a report's PDF is kept."""
    return _status_path(report_id).with_suffix(".pdf")


def write_status(report_id: str, **fields) -> dict:
    """Merge fields into a report's JSON status file (written atomically)."""
    path = _status_path(report_id)
    status = read_status(report_id) or {}
    status.update(fields)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status, default=str))
    os.replace(tmp, path)
    return status


def read_status(report_id: str) -> dict | None:
    """A report's status ({state, progress, store, first, last…}) or None."""
    try:
        return json.loads(_status_path(report_id).read_text())
    except (FileNotFoundError, ValueError):
        return None


def new_report(store: Store, first: date, last: date, now: datetime) -> str:
    """Record a queued report for a store and local-date period; answer its id."""
    report_id = f"{store.id}-{first:%Y%m%d}-{last:%Y%m%d}-{secrets.token_hex(4)}"
    write_status(
        report_id,
        state="queued",
        progress=0,
        store=store.id,
        first=first.isoformat(),
        last=last.isoformat(),
        created_at=now.isoformat(),
    )
    return report_id


def weekly_html(store: Store, first: date, last: date, now: datetime) -> str:
    """The weekly report as HTML (needs an app context for templates and translations)."""
    from flask import render_template

    start = schedule.day_bounds(first, store.timezone)[0]
    end = schedule.day_bounds(last, store.timezone)[1]
    d = reports.dashboard(store, start, end, now)
    clients = reports.returned_contacts(store, start, end, None, None)[:60]
    return render_template(
        "reports/weekly.html", d=d, store=store, first=first, last=last, now=now, clients=clients
    )


def build_report(report_id: str, now: datetime) -> Path:
    """Render a queued report to PDF, updating its status as it goes."""
    status = read_status(report_id)
    if status is None:
        raise ValueError("unknown report")
    try:
        store = Store.get_by_id(status["store"])
        first, last = date.fromisoformat(status["first"]), date.fromisoformat(status["last"])
        write_status(report_id, state="running", progress=20)
        html = weekly_html(store, first, last, now)
        write_status(report_id, progress=60)
        data = render_pdf(html)
        pdf_path(report_id).write_bytes(data)
    except Exception as exc:
        write_status(report_id, state="failed", error=str(exc)[:300])
        raise
    write_status(report_id, state="done", progress=100, size=len(data))
    return pdf_path(report_id)


def previous_week(store: Store, now: datetime) -> tuple[date, date]:
    """Last Monday-to-Sunday week in the store's timezone."""
    today = schedule.local_date(now, store.timezone)
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(days=7), monday - timedelta(days=1)


def send_report_email(
    smtp_url: str, sender: str, to: list[str], subject: str, pdf: bytes, filename: str
) -> None:
    """Mail a PDF to the given addresses over SMTP (smtp:// or smtps://)."""
    conn = parse_smtp_url(smtp_url)
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg.set_content(subject)
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=filename)
    cls = smtplib.SMTP_SSL if conn["ssl"] else smtplib.SMTP
    with cls(conn["host"], conn["port"], timeout=30) as smtp:
        smtp.ehlo()
        if not conn["ssl"] and smtp.has_extn("starttls"):
            smtp.starttls()
            smtp.ehlo()
        if conn["user"]:
            smtp.login(conn["user"], conn["password"] or "")
        smtp.send_message(msg)


def mail_weekly_reports(now: datetime, smtp_url: str | None, sender: str) -> list[str]:
    """For each store where it is Monday 08:xx now, mail last week's report to its managers once."""
    if not smtp_url:
        return []
    sent = []
    for store in Store.select().where(Store.active == True):  # noqa: E712
        local = now.astimezone(ZoneInfo(store.timezone))
        if local.weekday() != 0 or local.hour != 8:
            continue
        first, last = previous_week(store, now)
        marker = f"weekly-{store.id}-{first:%Y%m%d}"
        if (read_status(marker) or {}).get("state") == "mailed":
            continue
        managers = [
            s.email
            for s in Staff.select(Staff.email)
            .join(StaffStore)
            .where(
                StaffStore.store == store.id,
                Staff.role == "manager",
                Staff.active == True,  # noqa: E712
            )
        ]
        if not managers:
            continue
        report_id = new_report(store, first, last, now)
        path = build_report(report_id, now)
        send_report_email(
            smtp_url,
            sender,
            managers,
            f"{store.name}: {first.isoformat()} – {last.isoformat()}",
            path.read_bytes(),
            f"revisit-{store.key}-{first.isoformat()}.pdf",
        )
        write_status(marker, state="mailed", report=report_id, at=now.isoformat())
        sent.append(store.key)
    return sent
