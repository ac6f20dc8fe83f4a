"""Sign-in, sign-out, password change, rate limiting, CSRF and the login audit."""

from app.models import LoginEvent, StaffSession
from tests.factories import PASSWORD, login, make_staff, make_store


def test_sign_in_lands_employee_on_today_and_manager_on_dashboard(client):
    store = make_store()
    employee = make_staff("employee", [store])
    manager = make_staff("manager", [store])
    login(client, employee)
    assert client.get("/").headers["Location"].endswith("/today")
    other = client.application.test_client()
    login(other, manager)
    assert other.get("/").headers["Location"].endswith("/dashboard")


def test_wrong_password_is_refused_and_audited(client):
    staff = make_staff("employee", [make_store()])
    resp = client.post("/login", data={"email": staff.email, "password": "nope"})
    assert resp.status_code == 422
    assert "do not match" in resp.get_data(as_text=True)
    event = LoginEvent.get()
    assert (
        event.success is False and event.reason == "bad_credentials" and event.staff_id == staff.id
    )


def test_login_rate_limit_is_counted_in_the_database(client, app):
    staff = make_staff("employee", [make_store()])
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert (
            client.post("/login", data={"email": staff.email, "password": "bad"}).status_code == 422
        )
    # A different client (another web process would share only the database) is limited too,
    # even with the right password.
    other = app.test_client()
    resp = other.post("/login", data={"email": staff.email, "password": PASSWORD})
    assert resp.status_code == 429
    assert LoginEvent.select().where(LoginEvent.reason == "rate_limited").count() == 1


def test_logout_revokes_a_copied_cookie(app):
    staff = make_staff("employee", [make_store()])
    client = app.test_client()
    login(client, staff)
    cookie = client.get_cookie("session")
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    assert thief.get("/today").status_code == 200
    assert client.post("/logout").status_code == 303
    assert thief.get("/today").status_code == 302
    assert StaffSession.get().revoked_at is not None


def test_signing_in_again_revokes_the_session_it_replaces(app):
    store = make_store()
    first, second = make_staff("employee", [store]), make_staff("manager", [store])
    client = app.test_client()
    login(client, first)
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    assert thief.get("/today").status_code == 200
    login(client, second)
    assert client.get("/dashboard").status_code == 200
    assert thief.get("/today").status_code == 302
    assert StaffSession.select().where(StaffSession.revoked_at.is_null()).count() == 1


def test_language_chosen_before_sign_in_stays_after_sign_in_and_sign_out(client):
    staff = make_staff("employee", [make_store()])
    client.post("/language?lang=th")
    login(client, staff)
    assert '<html lang="th">' in client.get("/today").get_data(as_text=True)
    client.post("/logout")
    assert '<html lang="th">' in client.get("/login").get_data(as_text=True)


def test_password_change_revokes_every_session(app):
    staff = make_staff("employee", [make_store()])
    phone, laptop = app.test_client(), app.test_client()
    login(phone, staff)
    login(laptop, staff)
    resp = phone.post(
        "/account/password", data={"current": PASSWORD, "new": "a much longer secret"}
    )
    assert resp.status_code == 303
    assert laptop.get("/today").status_code == 302
    assert phone.get("/today").status_code == 302
    fresh = app.test_client()
    assert (
        fresh.post(
            "/login", data={"email": staff.email, "password": "a much longer secret"}
        ).status_code
        == 303
    )


def test_password_change_rejects_short_password(client):
    staff = make_staff("employee", [make_store()])
    login(client, staff)
    resp = client.post("/account/password", data={"current": PASSWORD, "new": "short"})
    assert resp.status_code == 422


def test_inactive_staff_cannot_sign_in_and_loses_sessions(app):
    staff = make_staff("employee", [make_store()])
    client = app.test_client()
    login(client, staff)
    staff.active = False
    staff.save()
    assert client.get("/today").status_code == 302
    resp = app.test_client().post("/login", data={"email": staff.email, "password": PASSWORD})
    assert resp.status_code == 422


def test_csrf_is_required_for_forms_and_htmx(csrf_app):
    staff = make_staff("employee", [make_store()])
    client = csrf_app.test_client()
    resp = client.post("/login", data={"email": staff.email, "password": PASSWORD})
    assert resp.status_code == 400  # no token
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    resp = client.post(
        "/login", data={"email": staff.email, "password": PASSWORD, "csrf_token": token}
    )
    assert resp.status_code == 303
    # htmx sends the token as a header (hx-headers on <body>)
    today = client.get("/today").get_data(as_text=True)
    header_token = today.split('"X-CSRFToken": "')[1].split('"')[0]
    assert client.post("/logout").status_code == 400
    assert (
        client.post(
            "/logout", headers={"X-CSRFToken": header_token, "HX-Request": "true"}
        ).status_code
        == 303
    )


def test_open_redirect_after_login_is_refused(client):
    staff = make_staff("employee", [make_store()])
    resp = client.post(
        "/login?next=https://evil.example/", data={"email": staff.email, "password": PASSWORD}
    )
    assert resp.headers["Location"] in ("/", "http://localhost/")


def test_login_audit_shows_a_manager_only_their_stores_staff(app):
    store_a, store_b = make_store(), make_store()
    employee_a = make_staff("employee", [store_a], email="a@example.test")
    employee_b = make_staff("employee", [store_b], email="b@example.test")
    manager_a = make_staff("manager", [store_a])
    for staff in (employee_a, employee_b):
        login(app.test_client(), staff)
    app.test_client().post("/login", data={"email": employee_a.email, "password": "wrong"})
    client = app.test_client()
    login(client, manager_a)
    page = client.get("/settings/sign-ins").get_data(as_text=True)
    assert "a@example.test" in page and "Wrong password" in page
    assert "b@example.test" not in page
