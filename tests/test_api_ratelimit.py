"""Per-token rate limits: 429 with Retry-After, shared through the database or Redis."""

import os

import pytest
import redis

from app.models import ApiRateWindow
from app.routes import api as api_routes
from app.services import ratelimit, tokens
from tests.factories import make_store

# The run's own Redis database when it has one (CI runs the SQLite and PostgreSQL passes at once).
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/14"
START = 1_790_000_000.0  # a minute boundary is at START - 20 (1_789_999_980)


@pytest.fixture
def frozen_wall(monkeypatch):
    """The rate limiter's wall clock, moved by hand."""
    clock = {"t": START}
    monkeypatch.setattr(api_routes, "wall_clock", lambda: clock["t"])
    return clock


@pytest.fixture
def flushed_redis():
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


def _headers(raw):
    return {"Authorization": f"Bearer {raw}"}


def _exhaust(client, raw, limit):
    return [client.get("/api/v1/ping", headers=_headers(raw)).status_code for _ in range(limit + 1)]


@pytest.mark.parametrize("backend", ["database", "redis"])
def test_token_over_its_rate_gets_429_with_retry_after(app, client, frozen_wall, backend, request):
    if backend == "redis":
        request.getfixturevalue("flushed_redis")
        app.config["REDIS_URL"] = REDIS_URL
    else:
        app.config["REDIS_URL"] = None
    app.config["REVISIT_API_RATE"] = "3/minute"
    store = make_store()
    _, raw = tokens.create_token(store)
    _, other = tokens.create_token(store)
    assert _exhaust(client, raw, 3) == [200, 200, 200, 429]
    resp = client.get("/api/v1/customers", headers=_headers(raw))
    assert resp.status_code == 429 and resp.mimetype == "application/problem+json"
    assert resp.headers["Retry-After"] == "40"  # the window ends 40 s after START
    assert client.get("/api/v1/ping", headers=_headers(other)).status_code == 200
    frozen_wall["t"] = START + 41
    assert client.get("/api/v1/ping", headers=_headers(raw)).status_code == 200
    stored = ApiRateWindow.select().count()
    assert (stored == 0) if backend == "redis" else stored >= 2


def test_successful_responses_show_the_remaining_budget(app, client, frozen_wall):
    app.config["REVISIT_API_RATE"] = "5"
    _, raw = tokens.create_token(make_store())
    resp = client.get("/api/v1/ping", headers=_headers(raw))
    assert resp.headers["X-RateLimit-Limit"] == "5" and resp.headers["X-RateLimit-Remaining"] == "4"


def test_default_rate_is_600_a_minute_and_environment_overrides(
    app, client, monkeypatch, frozen_wall
):
    _, raw = tokens.create_token(make_store())
    assert client.get("/api/v1/ping", headers=_headers(raw)).headers["X-RateLimit-Limit"] == "600"
    monkeypatch.setenv("REVISIT_API_RATE", "120/minute")
    assert client.get("/api/v1/ping", headers=_headers(raw)).headers["X-RateLimit-Limit"] == "120"


def test_rate_text_forms():
    assert ratelimit.parse_rate(None) == 600
    assert ratelimit.parse_rate("100") == 100
    assert ratelimit.parse_rate("10/second") == 600
    assert ratelimit.parse_rate("600/hour") == 10
    with pytest.raises(ValueError):
        ratelimit.parse_rate("lots")


def test_database_counter_is_shared_and_drops_old_windows(app):
    first = ratelimit.hit("token:1", 2, START)
    second = ratelimit.hit("token:1", 2, START + 1)
    third = ratelimit.hit("token:1", 2, START + 2)
    assert (first.allowed, second.allowed, third.allowed) == (True, True, False)
    assert third.retry_after == 38
    assert ratelimit.hit("token:1", 2, START + 60).allowed
    assert ApiRateWindow.select().where(ApiRateWindow.key == "token:1").count() == 1


def test_redis_outage_falls_back_to_the_database(app):
    verdict = ratelimit.hit("token:9", 5, START, redis_url="redis://127.0.0.1:1/0")
    assert verdict.allowed and verdict.remaining == 4
    assert ApiRateWindow.get(ApiRateWindow.key == "token:9").count == 1
