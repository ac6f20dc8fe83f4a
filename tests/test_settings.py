"""Settings a manager changes without a developer: validated, audited, scoped to their stores."""

from decimal import Decimal

from app.models import AuditLog, ChannelSetting, Staff, StaffStore, Store
from tests.factories import login, make_staff, make_store

GOOD = {
    "name": "Bunga Beauty Bangsar",
    "timezone": "Asia/Kuala_Lumpur",
    "region": "MY",
    "currency": "MYR",
    "locale": "ms",
    "member_day": "15",
    "quiet_start": "22:00",
    "quiet_end": "08:30",
    "fatigue_messages": "3",
    "fatigue_followups": "2",
    "fatigue_days": "14",
    "no_answer_attempts": "4",
    "default_holdout": "10",
    "working_days": ["0", "1", "2", "3", "4"],
    "holidays": "2026-12-25\n2027-01-01",
}


def setup():
    store = make_store("kl", timezone="Asia/Kuala_Lumpur")
    manager = make_staff("manager", [store], name="Farah")
    return store, manager


def test_manager_saves_store_profile_and_contact_rules_and_it_is_audited(client):
    store, manager = setup()
    login(client, manager)
    resp = client.post(f"/settings/stores/{store.id}", data=GOOD)
    assert resp.status_code == 200 and "Saved." in resp.get_data(as_text=True)
    s = Store.get_by_id(store.id)
    assert (s.name, s.locale, s.member_day, s.quiet_start) == (
        "Bunga Beauty Bangsar",
        "ms",
        15,
        "22:00",
    )
    assert s.setting("fatigue_days") == 14 and s.setting("no_answer_attempts") == 4
    assert s.setting("working_days") == [0, 1, 2, 3, 4]
    assert s.setting("holidays") == ["2026-12-25", "2027-01-01"]
    assert s.setting("default_holdout") == 10
    log = AuditLog.get(AuditLog.action == "settings.updated")
    assert log.staff_id == manager.id and log.detail["name"][1] == "Bunga Beauty Bangsar"


def test_invalid_settings_rerender_with_specific_errors_and_change_nothing(client):
    store, manager = setup()
    login(client, manager)
    bad = dict(
        GOOD,
        timezone="Mars/Olympus",
        quiet_start="25:00",
        fatigue_days="0",
        holidays="next friday",
        working_days=[],
    )
    resp = client.post(f"/settings/stores/{store.id}", data=bad, headers={"HX-Request": "true"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "<html" not in html
    assert "Choose a timezone" in html
    assert "Enter a time as HH:MM" in html
    assert "Enter a number from 1 to 90" in html
    assert "is not a date" in html
    assert "Choose at least one working day" in html
    assert Store.get_by_id(store.id).timezone == "Asia/Kuala_Lumpur"


def test_channel_prices_are_validated_and_saved(client):
    store, manager = setup()
    ChannelSetting.create(store=store, channel="sms")
    login(client, manager)
    bad = client.post(f"/settings/stores/{store.id}/prices", data={"price_sms": "cheap"})
    assert bad.status_code == 422
    ok = client.post(f"/settings/stores/{store.id}/prices", data={"price_sms": "0.0450"})
    assert ok.status_code == 200
    assert ChannelSetting.get().price == Decimal("0.045")
    assert AuditLog.select().where(AuditLog.action == "channel.prices").exists()


def test_manager_adds_employees_to_own_store_but_never_owners(client):
    store, manager = setup()
    other = make_store("bkk")
    login(client, manager)
    resp = client.post(
        "/settings/staff/new",
        data={"name": "Mei", "email": "mei@example.test", "role": "employee", "stores": [store.id]},
    )
    assert resp.status_code == 201
    mei = Staff.get(Staff.email == "mei@example.test")
    assert [m.store_id for m in StaffStore.select().where(StaffStore.staff == mei.id)] == [store.id]
    owner = client.post(
        "/settings/staff/new",
        data={"name": "Boss", "email": "boss@example.test", "role": "owner", "stores": [store.id]},
    )
    assert owner.status_code == 422 and "You cannot give this role." in owner.get_data(as_text=True)
    elsewhere = client.post(
        "/settings/staff/new",
        data={"name": "X", "email": "x@example.test", "role": "employee", "stores": [other.id]},
    )
    assert elsewhere.status_code == 422
    assert (
        not Staff.select().where(Staff.email.in_(["boss@example.test", "x@example.test"])).exists()
    )


def test_owner_can_make_a_manager_of_any_store(client):
    store, _manager = setup()
    other = make_store("bkk")
    owner = make_staff("owner", [])
    login(client, owner)
    resp = client.post(
        "/settings/staff/new",
        data={
            "name": "Somchai",
            "email": "s@example.test",
            "role": "manager",
            "stores": [other.id],
        },
    )
    assert resp.status_code == 201
    assert Staff.get(Staff.email == "s@example.test").role == "manager"


def test_audit_page_filters_by_kind_and_shows_who(client):
    store, manager = setup()
    login(client, manager)
    client.post(f"/settings/stores/{store.id}", data=GOOD)
    client.post("/tags", data={"name": "VIP", "colour": "#2563eb"})
    html = client.get("/settings/audit?type=setting").get_data(as_text=True)
    assert "settings.updated" in html and "tag.created" not in html and "Farah" in html
    frag = client.get("/settings/audit?type=tag", headers={"HX-Request": "true"})
    assert "tag.created" in frag.get_data(as_text=True)


def test_employee_cannot_change_settings(client):
    store, _manager = setup()
    employee = make_staff("employee", [store])
    login(client, employee)
    assert client.post(f"/settings/stores/{store.id}", data=GOOD).status_code == 403


def test_audit_page_shows_a_plans_changes_and_its_versions(client):
    from app import clock
    from app.models import Plan, PlanVersion
    from app.services import audit

    store, manager = setup()
    plan = Plan.create(store=store, name="Birthday", template="birthday", type="recurring")
    other = Plan.create(store=store, name="Second visit", template="second_visit", type="behaviour")
    PlanVersion.create(plan=plan, version=1, snapshot={}, created_by=manager)
    PlanVersion.create(plan=plan, version=2, snapshot={}, created_by=manager)
    audit.record(manager, store, "plan.updated", "plan", plan.id, {"name": "Birthday"}, clock.now())
    audit.record(manager, store, "plan.paused", "plan", other.id, None, clock.now())
    login(client, manager)
    html = client.get(f"/settings/audit?plan={plan.id}").get_data(as_text=True)
    assert "plan.updated" in html and "plan.paused" not in html
    assert "Version 2" in html and "Version 1" in html
