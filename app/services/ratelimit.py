"""Per-token rate limits shared by every web process: Redis when configured, else the database."""

import logging
import math
import re
from dataclasses import dataclass

from peewee import fn

from app.db import db
from app.models import ApiRateWindow

log = logging.getLogger(__name__)

DEFAULT_PER_MINUTE = 600
WINDOW_SECONDS = 60
_RATE = re.compile(r"^\s*(\d+)\s*(?:/\s*(second|sec|s|minute|min|m|hour|h))?\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_UNIT_SECONDS |= {"h": 3600, "hour": 3600}
_clients: dict[str, object] = {}


@dataclass(frozen=True)
class Verdict:
    """The answer for one request: allowed or not, and when to retry."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: int


def parse_rate(value) -> int:
    """Requests per minute from 600, "600/minute", "10/second" or "5000/hour" (default 600)."""
    if value is None or str(value).strip() == "":
        return DEFAULT_PER_MINUTE
    match = _RATE.match(str(value))
    if not match:
        raise ValueError(f"REVISIT_API_RATE {value!r} is not like '600' or '600/minute'")
    count, unit = int(match.group(1)), (match.group(2) or "minute").lower()
    return max(1, math.ceil(count * 60 / _UNIT_SECONDS[unit]))


def _redis(url: str):
    if url not in _clients:
        import redis

        _clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return _clients[url]


def _count_in_redis(url: str, key: str, window: int) -> int:
    name = f"revisit:ratelimit:{key}:{window}"
    pipe = _redis(url).pipeline()
    pipe.incr(name)
    pipe.expire(name, WINDOW_SECONDS * 2)
    count, _ = pipe.execute()
    return int(count)


def _count_in_database(key: str, window: int) -> int:
    with db.atomic():
        (
            ApiRateWindow.insert(key=key, window=window, count=1)
            .on_conflict(
                conflict_target=[ApiRateWindow.key, ApiRateWindow.window],
                update={ApiRateWindow.count: ApiRateWindow.count + 1},
            )
            .execute()
        )
        count = (
            ApiRateWindow.select(fn.MAX(ApiRateWindow.count))
            .where(ApiRateWindow.key == key, ApiRateWindow.window == window)
            .scalar()
        )
    if count == 1:
        ApiRateWindow.delete().where(
            ApiRateWindow.key == key, ApiRateWindow.window < window
        ).execute()
    return int(count)


def hit(key: str, limit: int, now: float, redis_url: str | None = None) -> Verdict:
    """Count one request for `key` in the current minute (wall-clock seconds `now`)."""
    window = int(now // WINDOW_SECONDS)
    count = None
    if redis_url:
        try:
            count = _count_in_redis(redis_url, key, window)
        except Exception as exc:  # a Redis outage must not take the API down
            log.warning("rate limit falls back to the database: %s", type(exc).__name__)
    if count is None:
        count = _count_in_database(key, window)
    retry_after = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
    return Verdict(count <= limit, limit, max(0, limit - count), retry_after)
