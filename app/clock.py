"""The one place that reads the clock; honours REVISIT_NOW."""

import os
from datetime import UTC, datetime


def frozen_at() -> datetime | None:
    """The instant REVISIT_NOW freezes this process at, or None."""
    raw = os.environ.get("REVISIT_NOW")
    if not raw:
        return None
    return parse_instant(raw)


def parse_instant(raw: str) -> datetime:
    """Parse ISO-8601; an instant without an offset is taken as UTC."""
    value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def now() -> datetime:
    """The current instant, aware and in UTC (frozen when REVISIT_NOW is set)."""
    return frozen_at() or datetime.now(UTC)
