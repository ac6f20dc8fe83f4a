"""Every route, requested as anonymous, employee of A, manager of B and owner."""

import pytest

from tests.access_rules import ACCESS
from tests.factories import login
from tests.world import build_world

VIEWERS = ("anon", "employee_a", "manager_b", "owner")


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
        # A GET+POST form page must have both covered.
        assert methods <= covered | {"GET"} or methods & covered, (rule.endpoint, methods, covered)
        assert methods & covered, f"{rule.endpoint}: none of {methods} is in the matrix"


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
