"""Who gets what from every route: the access matrix.

Each endpoint maps to a list of requests; each request names the method, a URL built
from the world, and the status expected for each viewer:
  anon        nobody signed in
  employee_a  an employee of store A (the objects below belong to store A)
  manager_b   a manager of store B only
  owner       the owner (every store)
`data` is an optional form/JSON body builder. Add an entry for every new route;
test_access_matrix fails when a registered route has none.
"""

R = 302  # redirect to sign-in (or away from a page that makes no sense when signed in)

ACCESS = {
    "auth.login": [("GET", lambda w: "/login", dict(anon=200, employee_a=R, manager_b=R, owner=R))],
    "auth.logout": [
        ("POST", lambda w: "/logout", dict(anon=R, employee_a=303, manager_b=303, owner=303))
    ],
    "auth.password": [
        (
            "GET",
            lambda w: "/account/password",
            dict(anon=R, employee_a=200, manager_b=200, owner=200),
        )
    ],
    "auth.set_language": [
        (
            "POST",
            lambda w: "/language?lang=th",
            dict(anon=303, employee_a=303, manager_b=303, owner=303),
        )
    ],
    "home.index": [("GET", lambda w: "/", dict(anon=R, employee_a=R, manager_b=R, owner=R))],
    "home.switch_store": [
        (
            "POST",
            lambda w: "/store",
            dict(anon=R, employee_a=303, manager_b=404, owner=303),
            lambda w: {"store_id": w.store_a.id},
        ),
    ],
    "health.healthz": [
        ("GET", lambda w: "/healthz", dict(anon=200, employee_a=200, manager_b=200, owner=200))
    ],
    "followups.today": [
        ("GET", lambda w: "/today", dict(anon=R, employee_a=200, manager_b=200, owner=200))
    ],
    "customers.index": [
        ("GET", lambda w: "/customers", dict(anon=R, employee_a=200, manager_b=200, owner=200))
    ],
    "customers.show": [
        (
            "GET",
            lambda w: f"/customers/{w.customer_a.id}",
            dict(anon=R, employee_a=200, manager_b=404, owner=200),
        ),
    ],
    "plans.index": [
        ("GET", lambda w: "/plans", dict(anon=R, employee_a=403, manager_b=200, owner=200))
    ],
    "dashboard.index": [
        ("GET", lambda w: "/dashboard", dict(anon=R, employee_a=403, manager_b=200, owner=200))
    ],
    "settings.sign_ins": [
        ("GET", lambda w: "/settings/sign-ins", dict(anon=R, employee_a=403, manager_b=200, owner=200))
    ],
    "settings.index": [
        ("GET", lambda w: "/settings", dict(anon=R, employee_a=403, manager_b=200, owner=200))
    ],
    "api.openapi": [
        (
            "GET",
            lambda w: "/api/v1/openapi.json",
            dict(anon=200, employee_a=200, manager_b=200, owner=200),
        )
    ],
    "api.ping": [
        ("GET", lambda w: "/api/v1/ping", dict(anon=401, employee_a=401, manager_b=401, owner=401))
    ],
}
