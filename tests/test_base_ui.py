"""The frame around every page: the frozen-clock banner and the error pages, in each language."""

from datetime import UTC, datetime

import pytest

from app import clock, create_app
from app.models import Store
from tests.factories import login, make_staff, make_store

FROZEN = "2026-06-17T10:00:00+08:00"


def test_revisit_now_freezes_the_clock_and_shows_a_banner(client, monkeypatch):
    assert "banner-frozen" not in client.get("/login").get_data(as_text=True)
    monkeypatch.setenv("REVISIT_NOW", FROZEN)
    assert clock.now() == datetime(2026, 6, 17, 2, 0, tzinfo=UTC)
    page = client.get("/login").get_data(as_text=True)
    assert 'class="banner-frozen"' in page and "REVISIT_NOW" in page


def test_revisit_now_without_an_offset_is_utc_and_feeds_model_defaults(app, monkeypatch):
    monkeypatch.setenv("REVISIT_NOW", "2026-06-17T10:00:00")
    store = Store.create(key="frozen", name="Frozen")
    assert Store.get_by_id(store.id).created_at == datetime(2026, 6, 17, 10, 0, tzinfo=UTC)


def test_frozen_banner_is_in_the_viewers_language(client, monkeypatch):
    monkeypatch.setenv("REVISIT_NOW", FROZEN)
    client.post("/language?lang=th")
    assert "นาฬิกาถูกตั้งไว้ที่" in client.get("/login").get_data(as_text=True)


@pytest.mark.parametrize(
    "lang,text",
    [
        ("en", "We could not find that page."),
        ("th", "ไม่พบหน้านี้"),
        ("zh_Hans", "找不到该页面。"),
        ("zh_Hant", "找不到這個頁面。"),
        ("ms", "Halaman itu tidak ditemui."),
    ],
)
def test_unknown_page_is_a_styled_404_in_the_chosen_language(client, lang, text):
    client.post(f"/language?lang={lang}")
    resp = client.get("/no-such-page")
    assert resp.status_code == 404
    page = resp.get_data(as_text=True)
    assert text in page
    assert 'href="/static/css/app.css"' in page and "<h1>404</h1>" in page


def test_employee_gets_a_styled_403_with_navigation_in_their_language(client):
    employee = make_staff("employee", [make_store()])
    login(client, employee)
    client.post("/language?lang=zh_Hans")
    resp = client.get("/plans")
    assert resp.status_code == 403
    page = resp.get_data(as_text=True)
    assert "<h1>403</h1>" in page and "您无权访问此页面。" in page and '<nav class="tabs"' in page
    assert '<html lang="zh-Hans">' in page


def test_a_crash_shows_a_styled_500_in_the_chosen_language(app):
    crashing = create_app(
        {
            "TESTING": False,
            "DATABASE": app.config["DATABASE"],
            "SECRET_KEY": "test-secret",
            "WTF_CSRF_ENABLED": False,
        }
    )

    @crashing.route("/boom")
    def boom():
        raise RuntimeError("boom")

    client = crashing.test_client()
    client.post("/language?lang=ms")
    resp = client.get("/boom")
    assert resp.status_code == 500
    page = resp.get_data(as_text=True)
    assert "Berlaku ralat di pihak kami. Sila cuba lagi." in page
    assert 'href="/static/css/app.css"' in page and "RuntimeError" not in page


def test_api_errors_are_problem_json_not_pages(client):
    resp = client.get("/api/v1/no-such-thing")
    assert resp.status_code == 404
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["status"] == 404
