"""Every route, requested as anonymous, employee of A, manager of B and owner."""

import pytest

from tests.access_rules import ACCESS
from tests.factories import PASSWORD, login
from tests.world import build_world

VIEWERS = ("anon", "employee_a", "manager_b", "owner")
# Requests that prove themselves another way than a CSRF token: API bearer tokens, providers'
# signed webhooks, and the signed one-click unsubscribe link (RFC 8058).
CSRF_EXEMPT_BLUEPRINTS = ("api", "webhooks")
CSRF_EXEMPT = {"messages.unsubscribe_confirm"}


def test_every_route_has_an_access_entry(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    missing = sorted(endpoints - set(ACCESS))
    assert not missing, f"routes without an access-matrix entry: {missing}"
    stale = sorted(set(ACCESS) - endpoints)
    assert not stale, f"access-matrix entries for routes that do not exist: {stale}"


def test_every_method_of_every_route_is_covered(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        methods = set(rule.methods) - {"HEAD", "OPTIONS"}
        covered = {entry[0] for entry in ACCESS.get(rule.endpoint, [])}
        # A GET+POST form page must have both covered: the POST is where the state changes.
        missing = sorted(methods - covered)
        assert not missing, f"{rule.endpoint} {rule.rule}: {missing} not in the matrix"


@pytest.mark.parametrize(
    "endpoint,index",
    [(ep, i) for ep, entries in sorted(ACCESS.items()) for i in range(len(entries))],
)
def test_access(app, endpoint, index):
    world = build_world()
    entry = ACCESS[endpoint][index]
    method, url_fn, expected = entry[0], entry[1], entry[2]
    data_fn = entry[3] if len(entry) > 3 else None
    for viewer in VIEWERS:
        client = app.test_client()
        if viewer != "anon":
            login(client, getattr(world, viewer))
        url = url_fn(world)
        data = data_fn(world) if data_fn else None
        if isinstance(data, dict) and data.get("__json__"):
            body = {k: v for k, v in data.items() if k != "__json__"}
            resp = client.open(url, method=method, json=body)
        else:
            resp = client.open(url, method=method, data=data)
        resp.close()  # finish streamed responses now, so their request context pops in order
        assert resp.status_code == expected[viewer], (
            f"{method} {url} as {viewer}: expected {expected[viewer]}, got {resp.status_code}"
        )


def _csrf_exempt(endpoint: str) -> bool:
    return endpoint in CSRF_EXEMPT or endpoint.split(".")[0] in CSRF_EXEMPT_BLUEPRINTS


@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
def test_every_state_changing_request_without_a_csrf_token_is_refused(csrf_app, htmx):
    world = build_world()
    client = csrf_app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    signed_in = client.post(
        "/login", data={"email": world.owner.email, "password": PASSWORD, "csrf_token": token}
    )
    assert signed_in.status_code == 303
    headers = {"HX-Request": "true"} if htmx else {}
    checked = 0
    for endpoint, entries in sorted(ACCESS.items()):
        for entry in entries:
            if entry[0] == "GET" or _csrf_exempt(endpoint):
                continue
            data = entry[3](world) if len(entry) > 3 else None
            if isinstance(data, dict) and data.get("__json__"):
                body = {k: v for k, v in data.items() if k != "__json__"}
                resp = client.open(entry[1](world), method=entry[0], json=body, headers=headers)
            else:
                resp = client.open(entry[1](world), method=entry[0], data=data, headers=headers)
            resp.close()
            assert resp.status_code == 400, f"{entry[0]} {endpoint} without a CSRF token"
            checked += 1
    assert checked >= 50
    assert client.get("/today").status_code == 200  # still signed in: the sign-out was refused
