"""gzip on the wire: pages, CSS and JS compressed for clients that accept it, nothing else."""

import gzip
from datetime import timedelta

from app import clock
from app.models import FollowUp
from tests.factories import login, make_customer, make_staff, make_store

GZIP = {"Accept-Encoding": "gzip, deflate, br"}


def _today_with_rows(client):
    store = make_store("kl", name="Bunga Beauty KL")
    aisyah = make_staff("employee", [store], name="Aisyah")
    for n in range(30):
        customer = make_customer(store, name=f"Nurul {n}", phone=f"+6012345{n:04d}")
        FollowUp.create(
            store=store,
            customer=customer,
            assignee=aisyah,
            due_at=clock.now() + timedelta(hours=n),
            open_customer=customer.id,
            script="Hi",
        )
    login(client, aisyah)


def test_today_is_sent_gzipped_to_a_browser_that_accepts_gzip(client):
    _today_with_rows(client)
    plain = client.get("/today")
    packed = client.get("/today", headers=GZIP)
    assert plain.status_code == packed.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    body = gzip.decompress(packed.data)
    assert b"Nurul 0<" in body and b"<html" in body
    assert int(packed.headers["Content-Length"]) == len(packed.data) < len(body) / 3


def test_static_css_and_htmx_are_gzipped_and_still_answer_304(client):
    for path in ("/static/css/app.css", "/static/vendor/htmx-2.0.11.min.js"):
        plain = client.get(path)
        packed = client.get(path, headers=GZIP)
        assert packed.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(packed.data) == plain.data
        assert len(packed.data) < len(plain.data) / 2
        again = client.get(path, headers={**GZIP, "If-None-Match": packed.headers["ETag"]})
        assert again.status_code == 304
        plain.close(), packed.close(), again.close()


def test_small_and_refused_responses_are_left_alone(client):
    tiny = client.get("/login", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in tiny.headers
    missing = client.get("/no-such-page", headers=GZIP)
    assert missing.status_code == 404 and "Content-Encoding" not in missing.headers


def test_json_api_answers_are_not_compressed(client):
    resp = client.get("/api/v1/openapi.json", headers=GZIP)
    assert resp.status_code == 200 and "Content-Encoding" not in resp.headers
    assert resp.get_json()["openapi"].startswith("3.")
