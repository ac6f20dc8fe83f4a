"""/healthz: 200 when the database and the queue answer, 503 (JSON) when either is down."""

import pytest
from huey import RedisHuey

from app.db import db, make_database
from app.tasks import queue


def test_healthz_answers_200_when_database_and_queue_are_up(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok", "checks": {"database": "ok", "queue": "ok"}}


def test_healthz_answers_503_when_the_database_is_down(client, tmp_path, monkeypatch):
    unreachable = make_database(f"sqlite:///{tmp_path}/no-such-folder/revisit.db")
    monkeypatch.setattr(db, "obj", unreachable)
    resp = client.get("/healthz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "error"
    assert body["checks"]["database"].startswith("error:") and body["checks"]["queue"] == "ok"


def test_healthz_answers_503_when_the_queue_is_down(client, monkeypatch):
    monkeypatch.setattr(queue, "huey", RedisHuey("revisit-down", url="redis://127.0.0.1:1/0"))
    resp = client.get("/healthz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"] == {"database": "ok", "queue": "error: ConnectionError"}


def test_other_pages_still_fail_when_the_database_is_down(client, tmp_path, monkeypatch):
    unreachable = make_database(f"sqlite:///{tmp_path}/no-such-folder/revisit.db")
    monkeypatch.setattr(db, "obj", unreachable)
    with pytest.raises(Exception, match="unable to open database"):
        client.get("/login")
