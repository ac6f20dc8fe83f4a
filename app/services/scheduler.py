"""One tick: everything due at an instant, found from the database.

`revisit tick` and the huey periodic job both call `tick(now)`. A SchedulerLock lease keeps two
ticks from doing the same work at once; it expires by itself, so a killed worker never blocks
the scheduler. Exactly-once never rests on the lock: the engine's unique keys hold without it.
"""

import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import peewee as pw

from app.db import db
from app.models import SchedulerLock

log = logging.getLogger(__name__)

LOCK_NAME = "tick"
LEASE = timedelta(minutes=5)


@dataclass
class TickSummary:
    occurrences: int = 0
    followups: int = 0
    messages: int = 0
    withdrawn: int = 0
    missed: int = 0
    deferred: int = 0
    sent: int = 0
    locked: bool = False

    def line(self, at: datetime) -> str:
        """The one-line summary `revisit tick` prints."""
        if self.locked:
            return f"tick at {at.isoformat()}: skipped, another tick holds the lock"
        parts = ", ".join(
            f"{name} {getattr(self, name)}"
            for name in (
                "occurrences",
                "followups",
                "messages",
                "withdrawn",
                "missed",
                "deferred",
                "sent",
            )
        )
        return f"tick at {at.isoformat()}: {parts}"


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{id(object())}"[:80]


def _wall_clock() -> datetime:
    # The lease is about live processes, not business time: a `tick --at` in the past or the
    # future must not leave a lease that blocks real ticks, so it reads the real clock.
    return datetime.now(UTC)


def acquire(name: str, holder: str, lease: timedelta = LEASE) -> bool:
    """Take the named lease if it is free or expired."""
    now = _wall_clock()
    try:
        with db.atomic():
            inserted = (
                SchedulerLock.insert(name=name, holder=holder, expires_at=now + lease)
                .on_conflict_ignore()
                .as_rowcount()
                .execute()
            )
    except pw.IntegrityError:
        inserted = 0
    if inserted:
        return True
    taken = (
        SchedulerLock.update(holder=holder, expires_at=now + lease)
        .where(
            (SchedulerLock.name == name)
            & ((SchedulerLock.expires_at < now) | (SchedulerLock.holder == holder))
        )
        .execute()
    )
    return bool(taken)


def release(name: str, holder: str) -> None:
    """Give the lease back (only if still ours)."""
    SchedulerLock.delete().where(
        (SchedulerLock.name == name) & (SchedulerLock.holder == holder)
    ).execute()


def tick(now: datetime) -> TickSummary:
    """Run every piece of due work at `now`; running it twice for one instant changes nothing."""
    from app.services import engine, followups

    summary = TickSummary()
    holder = _holder()
    if not acquire(LOCK_NAME, holder):
        summary.locked = True
        return summary
    try:
        result = engine.run_due(now=now)
        for key, value in result.items():
            if hasattr(summary, key):
                setattr(summary, key, value)
        if _leave_recently(now):
            followups.apply_leave(now)
        summary.sent = _send_outbox(now)
    finally:
        release(LOCK_NAME, holder)
    return summary


LEAVE_LOOKBACK = timedelta(days=30)


def _leave_recently(now: datetime) -> bool:
    """Whether any leave is current or ended lately: only then can work need handing over or
    back (apply_leave's own scan of open follow-ups costs an idle tick most of its time)."""
    from app.models import StaffLeave

    since = (now - LEAVE_LOOKBACK).date()
    return StaffLeave.select().where(StaffLeave.ends_on >= since).exists()


def _send_outbox(now: datetime) -> int:
    """Hand queued messages to the outbox: settle stuck sends, then send what is due."""
    from app.services import messaging

    messaging.reconcile(now)
    result = messaging.send_due(now)
    return int(result.get("sent", 0))
