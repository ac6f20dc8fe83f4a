"""The staff app over HTTP: full pages without htmx, fragments with it, honest status codes."""

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from app import clock
from app.models import (
    CardLedger,
    ContactLog,
    Customer,
    CustomerCard,
    Event,
    FollowUp,
    Plan,
    StaffLeave,
)
from app.services import schedule
from app.services.followups import PAGE_SIZE
from tests.factories import login, make_card, make_customer, make_reason, make_staff, make_store

HX = {"HX-Request": "true"}


def make_plan(store, name, template):
    return Plan.create(store=store, name=name, template=template, type="behaviour", status="active")


def make_followup(store, customer, assignee, due_at, plan=None, script=None, **kw):
    f = FollowUp.create(
        store=store,
        customer=customer,
        plan=plan,
        assignee=assignee,
        due_at=due_at,
        open_customer=customer.id,
        script=script if script is not None else f"Hi {customer.name}",
        **kw,
    )
    if plan is not None:
        make_reason(f, plan, text="card expires soon", script=f.script)
    return f


@pytest.fixture
def shop(app):
    store = make_store("kl", name="Bunga Beauty KL")
    aisyah = make_staff("employee", [store], name="Aisyah")
    customer = make_customer(store, name="小红", phone="+60123456789")
    plan = make_plan(store, "Card expiry", "card_expiry")
    f = make_followup(
        store,
        customer,
        aisyah,
        clock.now() - timedelta(days=2),
        plan=plan,
        script="Hi 小红, your card expires on 31 Dec",
    )
    return store, aisyah, customer, f


def signed_in(app, staff):
    client = app.test_client()
    login(client, staff)
    return client


def test_today_is_a_full_page_and_a_fragment_for_htmx(app, shop):
    store, aisyah, customer, f = shop
    make_followup(
        store, make_customer(store, name="Nurul"), aisyah, clock.now() + timedelta(days=3)
    )
    client = signed_in(app, aisyah)
    page = client.get("/today")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html
    assert 'id="group-overdue"' in html and "小红" in html and "Card expiry" in html
    assert re.search(r'id="count-overdue" class="count">1<', html)
    assert re.search(r'id="count-upcoming" class="count">1<', html)
    fragment = client.get("/today?q=nurul", headers=HX)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in body
    assert body.startswith('<div id="followup-list">') and "Nurul" in body and "小红" not in body
    assert "HX-Request" in fragment.headers["Vary"]


def test_today_counts_refresh_with_out_of_band_group_counts(app, shop):
    client = signed_in(app, shop[1])
    body = client.get("/today/counts", headers=HX).get_data(as_text=True)
    assert "<html" not in body and 'hx-trigger="followupLogged from:body"' in body
    assert 'id="count-overdue" class="count" hx-swap-oob="true">1<' in body
    assert "<html" in client.get("/today/counts").get_data(as_text=True)


def test_today_row_shows_how_many_reasons_were_merged(app, shop):
    store, aisyah, _, f = shop
    second = make_plan(store, "Second visit", "second_visit")
    make_reason(f, second, text="first visit 7 days ago", script="Hi")
    alone = make_followup(
        store, make_customer(store, name="Siti"), aisyah, clock.now(), plan=second
    )
    html = signed_in(app, aisyah).get("/today").get_data(as_text=True)
    row = re.search(rf'<article id="followup-{f.id}".*?</article>', html, re.S).group(0)
    assert '<span class="plus"' in row and "+1</span>" in row
    other = re.search(rf'<article id="followup-{alone.id}".*?</article>', html, re.S).group(0)
    assert 'class="plus"' not in other


def test_today_load_more_continues_after_the_cursor(app, shop):
    store, aisyah, _, _ = shop
    base = clock.now() + timedelta(days=5)
    for i in range(30):
        make_followup(
            store, make_customer(store, name=f"Later {i:02d}"), aisyah, base + timedelta(minutes=i)
        )
    client = signed_in(app, aisyah)
    html = client.get("/today").get_data(as_text=True)
    last, first_hidden = f"Later {PAGE_SIZE - 1:02d}", f"Later {PAGE_SIZE:02d}"
    assert last in html and first_hidden not in html
    more = re.search(r'href="(/today/more\?[^"]+)"', html).group(1).replace("&amp;", "&")
    rest = client.get(more, headers=HX).get_data(as_text=True)
    assert first_hidden in rest and "Later 29" in rest and last not in rest
    assert "/today/more" not in rest
    assert "<html" in client.get(more).get_data(as_text=True)


def test_manager_sees_the_store_queue_on_today(app, shop):
    store, _, _, _ = shop
    manager = make_staff("manager", [store], name="Farah")
    orphan = make_customer(store, name="Unassigned Uma")
    make_followup(store, orphan, None, clock.now())
    html = signed_in(app, manager).get("/today").get_data(as_text=True)
    assert 'id="group-queue"' in html and "Unassigned Uma" in html
    employee_html = signed_in(app, shop[1]).get("/today").get_data(as_text=True)
    assert "Unassigned Uma" not in employee_html


def test_followup_card_shows_reasons_script_copy_and_contact_links(app, shop):
    store, aisyah, customer, f = shop
    second = make_plan(store, "Second visit", "second_visit")
    make_reason(f, second, text="first visit 7 days ago", script="Come back!")
    f.variant = "B"
    f.save()
    make_card(customer, "stored_value", balance=Decimal("88.00"))
    client = signed_in(app, aisyah)
    resp = client.get(f"/followups/{f.id}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" in html
    assert "Card expiry" in html and "Second visit" in html and "first visit 7 days ago" in html
    assert "Hi 小红, your card expires on 31 Dec" in html and "Come back!" in html
    assert f'data-copy="script-{f.id}"' in html and "Variant B" in html
    assert "tel:+60123456789" in html
    assert "sms:+60123456789?&amp;body=Hi%20%E5%B0%8F%E7%BA%A2" in html
    assert "https://wa.me/60123456789?text=Hi%20%E5%B0%8F%E7%BA%A2" in html
    assert "https://line.me/R/msg/text/?Hi%20%E5%B0%8F%E7%BA%A2" in html
    assert 'href="weixin://"' in html
    assert "88.00" in html
    fragment = client.get(f"/followups/{f.id}", headers=HX).get_data(as_text=True)
    assert "<html" not in fragment and fragment.startswith(f'<article id="followup-{f.id}"')
    row = client.get(f"/followups/{f.id}?view=row", headers=HX).get_data(as_text=True)
    assert 'class="fu"' in row and "+1" in row


def test_log_no_answer_with_htmx_returns_the_undo_strip_and_triggers_refresh(app, shop):
    _, aisyah, _, f = shop
    client = signed_in(app, aisyah)
    resp = client.post(
        f"/followups/{f.id}/log", data={"outcome": "no_answer", "in_list": "1"}, headers=HX
    )
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in body
    assert resp.headers["HX-Trigger"] == "followupLogged"
    assert f'id="followup-{f.id}"' in body and "data-expire" in body and "Undo" in body
    f = FollowUp.get_by_id(f.id)
    assert f.attempts == 1 and f.due_at > clock.now()
    today = client.get("/today").get_data(as_text=True)
    overdue = today.split('id="group-overdue"')[1].split('id="group-today"')[0]
    assert "小红" not in overdue


def test_log_without_javascript_redirects_and_the_card_offers_undo(app, shop):
    _, aisyah, _, f = shop
    client = signed_in(app, aisyah)
    resp = client.post(f"/followups/{f.id}/log", data={"outcome": "declined", "note": "Busy"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/followups/{f.id}")
    html = client.get(f"/followups/{f.id}").get_data(as_text=True)
    assert f"/followups/{f.id}/undo" in html and "Declined" in html
    assert ContactLog.get(ContactLog.followup == f.id).note == "Busy"


def test_undo_brings_the_followup_back(app, shop):
    _, aisyah, customer, f = shop
    client = signed_in(app, aisyah)
    client.post(f"/followups/{f.id}/log", data={"outcome": "wrong_number"}, headers=HX)
    assert Customer.get_by_id(customer.id).phone_flagged_at is not None
    resp = client.post(f"/followups/{f.id}/undo", data={"in_list": "1"}, headers=HX)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.headers["HX-Trigger"] == "followupLogged"
    assert body.startswith(f'<article id="followup-{f.id}"') and "What happened?" in body
    assert FollowUp.get_by_id(f.id).status == "open"
    assert Customer.get_by_id(customer.id).phone_flagged_at is None
    again = client.post(f"/followups/{f.id}/undo", headers=HX)
    assert again.status_code == 422 and "There is nothing to undo." in again.get_data(as_text=True)


def test_double_tap_on_an_outcome_logs_once(app, shop):
    _, aisyah, _, f = shop
    client = signed_in(app, aisyah)
    v = FollowUp.get_by_id(f.id).updated_at.isoformat()
    first = client.post(f"/followups/{f.id}/log", data={"outcome": "reached", "v": v}, headers=HX)
    second = client.post(f"/followups/{f.id}/log", data={"outcome": "reached", "v": v}, headers=HX)
    assert first.status_code == second.status_code == 200
    assert ContactLog.select().where(ContactLog.followup == f.id).count() == 1


def test_booked_with_date_records_the_appointment_and_shows_it_on_the_profile(app, shop):
    _, aisyah, customer, f = shop
    client = signed_in(app, aisyah)
    day = (clock.now() + timedelta(days=3)).astimezone().date().isoformat()
    resp = client.post(
        f"/followups/{f.id}/log",
        data={"outcome": "booked", "appointment_date": day, "appointment_time": "15:30"},
        headers=HX,
    )
    assert resp.status_code == 200
    event = Event.get(Event.customer == customer.id)
    assert event.type == "appointment_booked" and event.appointment_at is not None
    assert FollowUp.get_by_id(f.id).outcome == "booked"
    profile = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert "Appointment booked" in profile and "3:30" in profile


def test_invalid_next_date_answers_422_with_the_card_re_rendered(app, shop):
    _, aisyah, _, f = shop
    client = signed_in(app, aisyah)
    resp = client.post(
        f"/followups/{f.id}/log",
        data={"outcome": "reached", "next_date": "2001-01-01", "note": "call later"},
        headers=HX,
    )
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "<html" not in body
    assert "The next follow-up must be in the future." in body and "call later" in body
    assert FollowUp.get_by_id(f.id).status == "open"
    full = client.post(f"/followups/{f.id}/log", data={"outcome": "nonsense"})
    assert full.status_code == 422 and "<html" in full.get_data(as_text=True)


def test_next_follow_up_date_creates_a_child_followup(app, shop):
    _, aisyah, _, f = shop
    client = signed_in(app, aisyah)
    day = (clock.now() + timedelta(days=10)).date().isoformat()
    resp = client.post(f"/followups/{f.id}/log", data={"outcome": "reached", "next_date": day})
    assert resp.status_code == 303
    child = FollowUp.get(FollowUp.parent == f.id)
    assert child.status == "open" and child.due_at.date().isoformat() <= day


def test_snooze_tomorrow_and_to_a_date(app, shop):
    _, aisyah, _, f = shop
    client = signed_in(app, aisyah)
    resp = client.post(f"/followups/{f.id}/snooze", data={"choice": "tomorrow"}, headers=HX)
    assert resp.status_code == 200 and resp.headers["HX-Trigger"] == "followupLogged"
    assert "Snoozed until" in resp.get_data(as_text=True)
    assert FollowUp.get_by_id(f.id).due_at > clock.now()
    bad = client.post(f"/followups/{f.id}/snooze", data={"choice": "date", "until_date": "x"})
    assert bad.status_code == 422
    day = (clock.now() + timedelta(days=4)).date().isoformat()
    ok = client.post(f"/followups/{f.id}/snooze", data={"choice": "date", "until_date": day})
    assert ok.status_code == 303


def test_employee_of_another_store_gets_404_on_every_followup_action(app, shop):
    _, _, _, f = shop
    other_store = make_store("bkk", timezone="Asia/Bangkok", region="TH", currency="THB")
    somchai = make_staff("employee", [other_store], name="Somchai")
    client = signed_in(app, somchai)
    assert client.get(f"/followups/{f.id}").status_code == 404
    assert client.post(f"/followups/{f.id}/log", data={"outcome": "reached"}).status_code == 404
    assert client.post(f"/followups/{f.id}/undo").status_code == 404
    assert client.post(f"/followups/{f.id}/snooze", data={"choice": "later"}).status_code == 404
    assert FollowUp.get_by_id(f.id).status == "open"


def test_colleague_in_the_same_store_cannot_open_my_followup(app, shop):
    store, _, _, f = shop
    mei = make_staff("employee", [store], name="Mei")
    assert signed_in(app, mei).get(f"/followups/{f.id}").status_code == 404


def test_opt_out_from_the_card_switches_consent_off(app, shop):
    _, aisyah, customer, f = shop
    client = signed_in(app, aisyah)
    client.post(f"/followups/{f.id}/log", data={"outcome": "opted_out"})
    from app.models import Consent

    assert {c.granted for c in Consent.select().where(Consent.customer == customer.id)} == {False}


def test_leave_page_records_days_off_and_hands_work_over(app, shop):
    store, aisyah, _, f = shop
    mei = make_staff("employee", [store], name="Mei")
    client = signed_in(app, aisyah)
    assert "<html" in client.get("/leave").get_data(as_text=True)
    today = schedule.local_date(clock.now(), store.timezone).isoformat()  # the store's today
    resp = client.post("/leave", data={"starts_on": today, "ends_on": today}, headers=HX)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and body.startswith('<div id="leave"')
    assert StaffLeave.select().where(StaffLeave.staff == aisyah.id).count() == 1
    assert FollowUp.get_by_id(f.id).assignee_id == mei.id
    bad = client.post("/leave", data={"starts_on": today, "ends_on": "1999-01-01"})
    assert bad.status_code == 422
    leave = StaffLeave.get(StaffLeave.staff == aisyah.id)
    assert client.post(f"/leave/{leave.id}/delete").status_code == 303
    assert FollowUp.get_by_id(f.id).assignee_id == aisyah.id


def test_manager_records_leave_for_an_employee_but_an_employee_only_for_herself(app, shop):
    store, aisyah, _, _ = shop
    manager = make_staff("manager", [store], name="Farah")
    mei = make_staff("employee", [store], name="Mei")
    day = (clock.now() + timedelta(days=20)).date().isoformat()
    resp = signed_in(app, manager).post("/leave", data={"staff": mei.id, "starts_on": day})
    assert resp.status_code == 303 and StaffLeave.get(StaffLeave.staff == mei.id)
    denied = signed_in(app, aisyah).post("/leave", data={"staff": mei.id, "starts_on": day})
    assert denied.status_code == 404


def test_customer_search_by_name_and_any_phone_format(app, shop):
    store, aisyah, _, _ = shop
    make_customer(store, name="สมหญิง ใจดี", phone="+60198887777")
    make_customer(store, name="Nurul Aisyah", phone="+60134445555")
    client = signed_in(app, aisyah)
    for q, name in [
        ("小", "小红"),
        ("ใจดี", "สมหญิง ใจดี"),
        ("NURUL", "Nurul Aisyah"),
        ("012-345 6789", "小红"),
        ("+60 12-345 6789", "小红"),
    ]:
        body = client.get("/customers", query_string={"q": q}, headers=HX).get_data(as_text=True)
        assert name in body and "<html" not in body, q
        assert body.count('class="row"') == 1, q


def test_customer_search_finds_middle_fragments_of_thai_chinese_and_malay_names(app, shop):
    store, aisyah, _, _ = shop
    other = make_store("bkk", name="Happy Paws", timezone="Asia/Bangkok", region="TH")
    make_customer(other, name="ปิยะนุช วงศ์ทอง", phone="+66812345678")  # another store's client
    for n in range(40):
        make_customer(store, name=f"Tan Mei Ling {n}", phone=f"+6017{n:07d}")
    make_customer(store, name="ปิยะนุช วงศ์ทอง", phone="+60198887777")
    make_customer(store, name="陈美玲美容", phone="+60134445555")
    make_customer(store, name="Nurul Aisyah binti Ahmad", phone="+60132223333")
    make_customer(store, name="100% Siti_Rahmah", phone="+60135556666")
    client = signed_in(app, aisyah)

    def found(q):
        body = client.get("/customers", query_string={"q": q}, headers=HX).get_data(as_text=True)
        return re.findall(r"<strong>([^<]+)</strong>", body)

    assert found("นุช วงศ์") == ["ปิยะนุช วงศ์ทอง"]  # Thai, across the space
    assert found("ยะนุ") == ["ปิยะนุช วงศ์ทอง"]
    assert found("美玲美") == ["陈美玲美容"]
    assert found("美玲") == ["陈美玲美容"]
    assert found("aisyah BINTI") == ["Nurul Aisyah binti Ahmad"]
    assert found("0% S") == ["100% Siti_Rahmah"]
    assert found("%") == ["100% Siti_Rahmah"]  # a literal percent sign, not a wildcard
    assert found("i_R") == ["100% Siti_Rahmah"]
    assert found("2223333") == ["Nurul Aisyah binti Ahmad"]  # the end of a phone number
    assert found("013-222 3333") == ["Nurul Aisyah binti Ahmad"]


def test_profile_timeline_pages_with_older_link(app, shop):
    store, aisyah, customer, _ = shop
    from app.services import events

    for i in range(35):
        events.record_event(
            store,
            {
                "external_id": f"pos-{i}",
                "type": "purchase",
                "customer": {"id": customer.id},
                "occurred_at": (clock.now() - timedelta(days=40 - i)).isoformat(),
                "amount": "10",
                "items": [{"sku": f"SKU{i}", "name": f"Item {i}"}],
            },
            clock.now(),
        )
    client = signed_in(app, aisyah)
    html = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert "Item 34" in html and "Item 10" not in html
    assert f"/customers/{customer.id}/timeline?page=2" in html
    older = client.get(f"/customers/{customer.id}/timeline?page=2", headers=HX)
    body = older.get_data(as_text=True)
    assert older.status_code == 200 and "<html" not in body and "Item 10" in body


def test_counter_card_use_deducts_and_shows_the_new_state_once_per_form(app, shop):
    store, aisyah, customer, _ = shop
    card = make_card(customer, "count", remaining_uses=5)
    client = signed_in(app, aisyah)
    page = client.get(f"/customers/{customer.id}/counter").get_data(as_text=True)
    external_id = re.search(
        r'id="counter-card_used".*?name="external_id" value="([^"]+)"', page, re.S
    ).group(1)
    data = {"kind": "card_used", "card": card.id, "uses": "1", "external_id": external_id}
    first = client.post(f"/customers/{customer.id}/counter", data=data, headers=HX)
    body = first.get_data(as_text=True)
    assert first.status_code == 200 and "4 uses left" in body and "Recorded." in body
    second = client.post(f"/customers/{customer.id}/counter", data=data, headers=HX)
    assert "Already recorded." in second.get_data(as_text=True)
    assert CustomerCard.get_by_id(card.id).remaining_uses == 4
    assert CardLedger.select().where(CardLedger.card == card.id).count() == 1


def test_counter_top_up_service_and_visit(app, shop):
    store, aisyah, customer, _ = shop
    card = make_card(customer, "stored_value", balance=Decimal("50.00"))
    client = signed_in(app, aisyah)
    url = f"/customers/{customer.id}/counter"
    top = client.post(url, data={"kind": "top_up", "card": card.id, "amount": "200"}, headers=HX)
    assert top.status_code == 200 and "250.00" in top.get_data(as_text=True)
    service = client.post(url, data={"kind": "service_completed", "service_name": "Lash lift"})
    assert service.status_code == 303
    assert client.post(url, data={"kind": "visit"}).status_code == 303
    types = sorted(e.type for e in Event.select().where(Event.customer == customer.id))
    assert types == ["service_completed", "top_up", "visit"]
    customer = Customer.get_by_id(customer.id)
    assert customer.visit_count == 1 and customer.last_visit_at is not None
    page = client.get(url).get_data(as_text=True)
    assert "Lash lift" in page


def test_counter_validation_errors_answer_422_with_the_form(app, shop):
    _, aisyah, customer, _ = shop
    card = make_card(customer, "stored_value", balance=Decimal("50.00"))
    client = signed_in(app, aisyah)
    url = f"/customers/{customer.id}/counter"
    resp = client.post(url, data={"kind": "top_up", "card": card.id, "amount": "-3"}, headers=HX)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422 and body.startswith('<form id="counter-top_up"')
    assert "Enter an amount greater than zero." in body
    none = client.post(url, data={"kind": "service_completed"})
    assert none.status_code == 422 and "<html" in none.get_data(as_text=True)
    assert Event.select().count() == 0


def test_today_row_shows_an_expiry_this_year_without_the_year(app, shop):
    store, aisyah, customer, f = shop
    now = clock.now()
    card = make_card(customer, "stored_value", expires_on=date(now.year, 12, 31))
    html = signed_in(app, aisyah).get("/today").get_data(as_text=True)
    assert "Expires Dec 31<" in html
    card.expires_on = date(now.year + 1, 1, 15)
    card.save()
    html = signed_in(app, aisyah).get("/today").get_data(as_text=True)
    assert f"Expires Jan 15, {now.year + 1}<" in html
