"""Settings → API tokens: created and shown once, stored hashed, listed with last use, revoked."""

import pytest

from app.models import ApiToken
from tests.factories import login
from tests.world import build_world

HX = {"HX-Request": "true"}


@pytest.fixture
def world(app):
    return build_world()


def _create(client, store, name="Front-desk POS", headers=None):
    return client.post(
        "/settings/tokens", data={"name": name, "store": store.id}, headers=headers or {}
    )


def _raw_token(resp) -> str:
    text = resp.get_data(as_text=True)
    start = text.index('id="new-token">') + len('id="new-token">')
    return text[start : text.index("</code>", start)]


def test_manager_creates_a_token_shown_once_and_stored_hashed(client, world):
    login(client, world.manager_a)
    resp = _create(client, world.store_a)
    assert resp.status_code == 201
    raw = _raw_token(resp)
    assert raw.startswith("rv_") and len(raw) > 30
    token = ApiToken.get(ApiToken.store == world.store_a.id)
    assert token.name == "Front-desk POS" and token.created_by_id == world.manager_a.id
    assert raw not in (token.token_hash, token.prefix) and raw.startswith(token.prefix)
    page = client.get("/settings/tokens").get_data(as_text=True)
    assert raw not in page and token.prefix in page and "never used" in page
    api = client.get("/api/v1/ping", headers={"Authorization": f"Bearer {raw}"})
    assert api.get_json()["store"] == "kl"
    assert "never used" not in client.get("/settings/tokens").get_data(as_text=True)


def test_token_for_a_store_i_do_not_manage_is_refused(client, world):
    login(client, world.manager_b)
    resp = _create(client, world.store_a)
    assert resp.status_code == 422
    assert ApiToken.select().count() == 0
    assert _create(client, world.store_b, name="").status_code == 422


def test_revoked_token_stops_working_and_is_listed_as_revoked(client, world):
    login(client, world.manager_a)
    raw = _raw_token(_create(client, world.store_a))
    token = ApiToken.get(ApiToken.store == world.store_a.id)
    resp = client.post(f"/settings/tokens/{token.id}/revoke")
    assert resp.status_code == 303
    assert client.get("/api/v1/ping", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
    assert "Revoked" in client.get("/settings/tokens").get_data(as_text=True)
    assert ApiToken.get_by_id(token.id).revoked_at is not None


def test_manager_of_another_store_cannot_revoke(client, world):
    login(client, world.manager_a)
    _create(client, world.store_a)
    token = ApiToken.get(ApiToken.store == world.store_a.id)
    other = client.application.test_client()
    login(other, world.manager_b)
    assert other.post(f"/settings/tokens/{token.id}/revoke").status_code == 404
    assert ApiToken.get_by_id(token.id).revoked_at is None
    assert token.prefix not in other.get("/settings/tokens").get_data(as_text=True)


def test_htmx_gets_the_tokens_fragment(client, world):
    login(client, world.manager_a)
    page = client.get("/settings/tokens")
    assert "<html" in page.get_data(as_text=True)
    fragment = client.get("/settings/tokens", headers=HX).get_data(as_text=True)
    assert "<html" not in fragment and 'id="api-tokens"' in fragment
    created = _create(client, world.store_a, headers=HX)
    assert created.status_code == 201 and "<html" not in created.get_data(as_text=True)
    token = ApiToken.get(ApiToken.store == world.store_a.id)
    revoked = client.post(f"/settings/tokens/{token.id}/revoke", headers=HX)
    assert revoked.status_code == 200 and 'id="api-tokens"' in revoked.get_data(as_text=True)
    assert "Revoked" in revoked.get_data(as_text=True)
