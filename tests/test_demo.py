"""The demo business: believable, consistent with its own events, and loaded only once."""

import random
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import peewee as pw
import phonenumbers
import pytest

from app.models import (
    CardLedger,
    CardProduct,
    Consent,
    ContactLog,
    Customer,
    CustomerAttribute,
    CustomerCard,
    CustomerTag,
    Decision,
    Event,
    EventItem,
    FollowUp,
    Message,
    Notice,
    Occurrence,
    Plan,
    PointsEntry,
    Staff,
    StaffStore,
    Store,
    Tag,
    Visit,
)
from app.models.events import VISIT_TYPES
from app.services import demo, messaging

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
COUNT = 120

THAI = re.compile(r"[\u0E00-\u0E7F]")
SIMPLIFIED_ONLY = set("张刘陈杨黄赵吴")
TRADITIONAL_ONLY = set("陳黃張劉楊鄭謝吳")


@pytest.fixture
def loaded(app):
    """The demo loaded once at NOW, with what it printed and returned."""
    lines: list[str] = []
    logins = demo.load_demo(customers=COUNT, now=NOW, echo=lines.append)
    return logins, lines


def _stores():
    return {s.key: s for s in Store.select()}


def test_demo_creates_the_salon_and_the_pet_clinic(loaded):
    stores = _stores()
    salon, clinic = stores["kl-salon"], stores["bkk-petclinic"]
    assert (salon.name, salon.timezone, salon.region, salon.currency) == (
        "Bunga Beauty & Lash Studio",
        "Asia/Kuala_Lumpur",
        "MY",
        "MYR",
    )
    assert salon.member_day == 18 and salon.locale in ("ms", "en")
    assert (clinic.name, clinic.timezone, clinic.region, clinic.currency, clinic.locale) == (
        "Happy Paws Animal Clinic",
        "Asia/Bangkok",
        "TH",
        "THB",
        "th",
    )
    assert salon.setting("working_days") is not None  # create_store's defaults kept
    counts = {
        key: Customer.select().where(Customer.store == s.id).count() for key, s in stores.items()
    }
    assert sum(counts.values()) == COUNT
    assert counts["kl-salon"] == 72 and counts["bkk-petclinic"] == 48


def test_demo_has_eight_staff_with_roles_and_store_memberships(loaded):
    stores = _stores()
    staff = list(Staff.select())
    assert len(staff) == 8
    by_role = defaultdict(list)
    for member in staff:
        keys = sorted(s.store.key for s in StaffStore.select().where(StaffStore.staff == member.id))
        by_role[member.role].append(keys)
    assert by_role["owner"] == [["bkk-petclinic", "kl-salon"]]
    assert sorted(by_role["manager"]) == [["bkk-petclinic"], ["kl-salon"]]
    assert sorted(by_role["employee"]) == [["bkk-petclinic"]] * 2 + [["kl-salon"]] * 3
    assert stores  # both stores exist for the memberships above


def test_demo_names_are_malay_chinese_indian_and_thai(loaded):
    stores = _stores()
    salon = [c.name for c in Customer.select().where(Customer.store == stores["kl-salon"].id)]
    clinic = [c.name for c in Customer.select().where(Customer.store == stores["bkk-petclinic"].id)]
    everyone = salon + clinic
    assert any(" binti " in n for n in salon) and any(" bin " in n for n in salon)
    assert any(" a/p " in n or " a/l " in n for n in salon)
    assert any(set(n) & SIMPLIFIED_ONLY for n in everyone)
    assert any(set(n) & TRADITIONAL_ONLY for n in everyone)
    assert sum(1 for n in clinic if THAI.search(n)) > len(clinic) // 2
    pets = CustomerAttribute.select().where(CustomerAttribute.key == "pet_name").count()
    species = {
        a.value for a in CustomerAttribute.select().where(CustomerAttribute.key == "species")
    }
    assert pets == len(clinic) and species == {"cat", "dog"}


def test_demo_clients_of_a_store_never_share_a_full_name(loaded):
    for store in _stores().values():
        names = [c.name for c in Customer.select().where(Customer.store == store.id)]
        assert len(set(names)) == len(names), store.key


def test_two_thousand_demo_clients_get_two_thousand_names():
    rng = random.Random(demo.SEED)
    for spec, count in ((demo.SALON, 1200), (demo.CLINIC, 800)):
        seen: set[str] = set()
        names = [demo._new_person(spec, rng, seen)[0] for _ in range(count)]
        assert len(set(names)) == count, spec.short


def test_demo_phones_are_valid_e164_numbers_of_the_store_region(loaded):
    for customer in Customer.select(Customer, Store).join(Store):
        parsed = phonenumbers.parse(customer.phone, None)
        assert phonenumbers.is_valid_number(parsed), customer.phone
        assert phonenumbers.region_code_for_number(parsed) == customer.store.region
        assert customer.phone == phonenumbers.format_number(
            parsed, phonenumbers.PhoneNumberFormat.E164
        )


def test_demo_customers_have_birthdays_sources_levels_tags_and_consent(loaded):
    today = NOW.astimezone(ZoneInfo("Asia/Kuala_Lumpur")).date()
    week = {
        (today + timedelta(days=k)).month * 100 + (today + timedelta(days=k)).day for k in range(7)
    }
    customers = list(Customer.select())
    assert any(c.birthday and (c.birthday.month, c.birthday.day) == (2, 29) for c in customers)
    assert sum(1 for c in customers if c.birthday_md in week) >= 5
    assert all(
        c.birthday is None or c.birthday_md == c.birthday.month * 100 + c.birthday.day
        for c in customers
    )
    sources = {c.source for c in customers}
    assert {"Walk-in", "Instagram", "LINE OA"} <= sources
    assert {c.level for c in customers} == {"Member", "Silver", "Gold"}
    assert {c.gender for c in customers} == {"female", "male"}
    assigned = sum(1 for c in customers if c.assigned_staff_id)
    assert COUNT * 0.25 < assigned < COUNT * 0.75
    tags = {t.name: t for t in Tag.select()}
    assert {"VIP", "New", "At risk", "Lash lover", "Cat", "Dog", "Senior pet"} <= set(tags)
    assert all(t.dimension and t.colour.startswith("#") for t in tags.values())
    used = {ct.tag.name for ct in CustomerTag.select(CustomerTag, Tag).join(Tag)}
    assert {"New", "At risk", "Cat", "Dog"} <= used
    granted = defaultdict(int)
    opted_out = 0
    for consent in Consent.select(Consent, Customer, Store).join(Customer).join(Store):
        granted[(consent.customer.store.region, consent.channel)] += consent.granted
        opted_out += consent.source == "reply STOP" and not consent.granted
    assert granted[("MY", "whatsapp")] > 0 and granted[("TH", "line")] > 0
    assert granted[("MY", "line")] == 0
    assert opted_out >= 1
    line_granted = Consent.select(Consent.customer).where(
        (Consent.channel == "line") & Consent.granted
    )
    assert (
        not Customer.select()
        .where(Customer.id.in_(line_granted) & Customer.line_id.is_null())
        .exists()
    )


def test_demo_cards_exist_in_every_state(loaded):
    today_kl = NOW.astimezone(ZoneInfo("Asia/Kuala_Lumpur")).date()
    cards = list(CustomerCard.select(CustomerCard, CardProduct).join(CardProduct))
    kinds = {c.product.kind for c in cards}
    assert kinds == {"stored_value", "count", "period"}
    active = [c for c in cards if c.status == "active"]
    sv = [c for c in active if c.product.kind == "stored_value"]
    assert any(c.balance > 500 for c in sv), "an active card with a high balance"
    assert any(0 < c.balance <= 500 for c in sv), "an active card with a low balance"
    count = [c for c in active if c.product.kind == "count"]
    assert any(0 < c.remaining_uses <= 2 for c in count), "a count card running low"
    assert any(today_kl <= c.expires_on <= today_kl + timedelta(days=30) for c in active), (
        "a card expiring within 30 days"
    )
    expired = [c for c in cards if c.status == "expired"]
    assert expired and all(c.expires_on < today_kl for c in expired)
    used_up = [c for c in cards if c.status == "used_up"]
    assert used_up and all(c.remaining_uses == 0 for c in used_up)
    names = {p.name for p in CardProduct.select()}
    assert {"RM 1,000 Top-up Card", "6× Lash Refill", "3× Deworming for cats"} <= names


def test_demo_card_balances_agree_with_ledger_and_card_use_events(loaded):
    ledger = defaultdict(lambda: [Decimal(0), 0, 0])
    for row in CardLedger.select():
        totals = ledger[row.card_id]
        totals[0] += row.delta_balance
        totals[1] += row.delta_uses
        totals[2] += row.kind == "use"
    uses = dict(
        Event.select(Event.card, pw.fn.COUNT(Event.id))
        .where(Event.type == "card_used")
        .group_by(Event.card)
        .tuples()
    )
    for card in CustomerCard.select(CustomerCard, CardProduct).join(CardProduct):
        balance, remaining, use_rows = ledger[card.id]
        assert use_rows == uses.get(card.id, 0)
        if card.product.kind == "count":
            assert remaining == card.remaining_uses >= 0
            spent = (
                Event.select(pw.fn.SUM(Event.card_uses)).where(Event.card == card.id).scalar() or 0
            )
            assert card.product.uses - spent == card.remaining_uses
        if card.product.kind == "stored_value":
            assert balance == card.balance >= 0
        used_at = [
            e.occurred_at
            for e in Event.select().where((Event.card == card.id) & (Event.type == "card_used"))
        ]
        assert card.last_used_at == (max(used_at) if used_at else None)


def test_demo_cached_aggregates_match_the_events(loaded):
    visit_events = Event.type.in_(VISIT_TYPES)
    facts = {
        cid: (first, last, Decimal(spend or 0))
        for cid, first, last, spend in Event.select(
            Event.customer,
            pw.fn.MIN(pw.Case(None, [(visit_events, Event.occurred_at)])),
            pw.fn.MAX(pw.Case(None, [(visit_events, Event.occurred_at)])),
            pw.fn.SUM(Event.amount),
        )
        .group_by(Event.customer)
        .tuples()
    }
    visit_counts = dict(
        Visit.select(Visit.customer, pw.fn.COUNT(Visit.id)).group_by(Visit.customer).tuples()
    )
    points = dict(
        PointsEntry.select(PointsEntry.customer, pw.fn.SUM(PointsEntry.delta))
        .group_by(PointsEntry.customer)
        .tuples()
    )
    days = defaultdict(set)
    for event in Event.select(Event, Store).join(Store).where(visit_events):
        days[event.customer_id].add(
            event.occurred_at.astimezone(ZoneInfo(event.store.timezone)).date()
        )
    visit_days = defaultdict(set)
    for visit in Visit.select():
        visit_days[visit.customer_id].add(visit.day)
    for customer in Customer.select():
        first, last, spend = facts[customer.id]
        assert _aware(first) == customer.first_visit_at
        assert _aware(last) == customer.last_visit_at
        assert spend == customer.total_spend
        assert visit_counts[customer.id] == customer.visit_count == len(days[customer.id])
        assert visit_days[customer.id] == days[customer.id]
        assert points[customer.id] == customer.points
    signups = PointsEntry.select().where(PointsEntry.kind == "signup")
    assert signups.count() == COUNT and all(p.delta == 50 for p in signups)
    purchases = Event.select().where(Event.type == "purchase").count()
    assert PointsEntry.select().where(PointsEntry.kind == "earn").count() == purchases
    items = EventItem.select().count()
    assert items == sum(len(e.items or []) for e in Event.select())


def _aware(value):
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_demo_history_spans_a_year_with_regulars_lapsed_and_new_clients(loaded):
    first = _aware(Event.select(pw.fn.MIN(Event.occurred_at)).scalar())
    last = _aware(Event.select(pw.fn.MAX(Event.occurred_at)).scalar())
    assert NOW - timedelta(days=366) <= first <= NOW - timedelta(days=300)
    assert last <= NOW
    types = {t for (t,) in Event.select(Event.type).distinct().tuples()}
    assert {
        "service_completed",
        "purchase",
        "card_used",
        "top_up",
        "appointment_booked",
        "appointment_cancelled",
    } <= types
    assert Event.select().where(Event.appointment_at > NOW).exists()
    assert Event.select().where(Event.staff.is_null(False)).count() > COUNT
    skus = {i.sku for i in EventItem.select(EventItem.sku).distinct()}
    assert {"FACIAL", "LASH-EXT", "LASH-REFILL", "VACCINE", "DEWORM", "GROOM"} <= skus
    customers = list(Customer.select())
    ago = [(NOW - c.last_visit_at).days for c in customers]
    assert any(60 <= d <= 200 for d in ago), "lapsed clients"
    assert any(d <= 42 for d in ago), "regulars"
    assert any(c.visit_count == 1 for c in customers)
    assert any((NOW - c.first_visit_at).days <= 14 for c in customers), "new clients"
    assert any(c.visit_count >= 6 for c in customers)
    assert any(c.joined_at < c.first_visit_at for c in customers)


def test_second_demo_run_refuses_and_adds_nothing(loaded):
    logins, _lines = loaded
    before = {m.__name__: m.select().count() for m in (Store, Staff, Customer, Event, CustomerCard)}
    lines: list[str] = []
    again = demo.load_demo(customers=COUNT, now=NOW + timedelta(hours=1), echo=lines.append)
    after = {m.__name__: m.select().count() for m in (Store, Staff, Customer, Event, CustomerCard)}
    assert after == before
    assert again == logins
    assert any("already exist" in line for line in lines)


def test_demo_logins_sign_in(loaded, app):
    logins, lines = loaded
    assert [role for role, _e, _p in logins] == ["owner", "manager", "employee"]
    assert any("customers" in line for line in lines)
    for role, email, password in logins:
        assert len(password) >= 10
        assert Staff.get(Staff.email == email).role == role
        resp = app.test_client().post("/login", data={"email": email, "password": password})
        assert resp.status_code == 303, (email, resp.status_code)


def test_demo_switches_on_template_plans_in_each_store(loaded):
    stores = _stores()
    active = defaultdict(set)
    for plan in Plan.select().where(Plan.status == "active"):
        active[plan.store_id].add(plan.template)
    assert {
        "member_day",
        "second_visit",
        "post_service",
        "card_expiry",
        "count_card_low",
        "balance_low",
        "birthday",
        "service_interval",
        "points_reminder",
    } <= active[stores["kl-salon"].id]
    assert {"second_visit", "card_use_reminder", "count_card_low", "balance_low"} <= active[
        stores["bkk-petclinic"].id
    ]
    assert Occurrence.select().where(Occurrence.status == "done").exists()


def test_demo_messages_go_out_on_the_log_only_channel_and_none_fails(loaded):
    stores = _stores()
    for store in stores.values():
        assert messaging.enabled_channels(store.id) == ["log_only"]
    statuses = {(m.channel, m.status) for m in Message.select()}
    assert ("log_only", "sent") in statuses
    assert Message.select().where(Message.status == "failed").count() == 0
    assert not Decision.select().where(Decision.reason.contains("not set up")).exists()


def test_demo_managers_land_on_their_dashboard_without_warnings(loaded, app):
    logins, _lines = loaded
    by_role = {role: (email, password) for role, email, password in logins}
    for role in ("manager", "owner"):
        email, password = by_role[role]
        web = app.test_client()
        web.post("/login", data={"email": email, "password": password})
        page = web.get("/", follow_redirects=True)
        assert page.status_code == 200 and b"Dashboard" in page.data, role
        assert b'class="notice"' not in page.data, role
    assert not Notice.select().where(Notice.read_at.is_null()).exists()


def test_demo_employee_has_followups_due_today_and_overdue(loaded):
    logins, lines = loaded
    assert any("Running plans" in line for line in lines)
    email = dict((role, e) for role, e, _p in logins)["employee"]
    employee = Staff.get(Staff.email == email)
    tz = ZoneInfo("Asia/Kuala_Lumpur")
    today = NOW.astimezone(tz).date()
    open_days = [
        f.due_at.astimezone(tz).date()
        for f in FollowUp.select().where(
            (FollowUp.assignee == employee.id) & (FollowUp.status == "open")
        )
    ]
    assert any(day == today for day in open_days), open_days
    assert any(day < today for day in open_days), open_days
    assert all(f.plan_id for f in FollowUp.select())
    done = FollowUp.select().where(FollowUp.status == "done").count()
    assert done > 0 and ContactLog.select().count() >= done


def test_revisit_demo_command_prints_a_login_per_role(app, monkeypatch):
    monkeypatch.setenv("REVISIT_NOW", NOW.isoformat())
    result = app.test_cli_runner().invoke(args=["demo", "--customers", "40"])
    assert result.exit_code == 0, result.output
    assert "Demo logins:" in result.output
    for role, email, password in demo.logins():
        assert re.search(rf"{role}\s+{re.escape(email)}\s+password: {password}", result.output)
    assert Customer.select().count() == 40
    again = app.test_cli_runner().invoke(args=["demo", "--customers", "40"])
    assert again.exit_code == 0 and "already exist" in again.output
    assert Customer.select().count() == 40
