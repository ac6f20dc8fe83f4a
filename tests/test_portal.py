"""The client's own page: a signed, rotatable, expiring link with points, rewards and opt-out."""

import base64
import threading
from datetime import timedelta
from decimal import Decimal

import pytest

from app import clock
from app.models import Consent, ConsentChange, Coupon, Customer, Message, Reward
from app.services import loyalty
from tests.factories import make_card, make_customer, make_store, utc

NOW = utc(2026, 11, 24, 3, 0)


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setenv("REVISIT_NOW", NOW.isoformat())
    return NOW


@pytest.fixture
def shop(app):
    return make_store(
        "happy-paws", name="Happy Paws", timezone="Asia/Bangkok", region="TH", currency="THB"
    )


def _link(app, customer, at=None):
    with app.app_context():
        return f"/p/{loyalty.portal_token(customer, at or clock.now())}"


def _member(shop, points=250, **kw):
    customer = make_customer(shop, name="Somying", phone="+66812345678", **kw)
    if points:
        loyalty.adjust(customer, points, "Opening balance", None, NOW)
    return Customer.get_by_id(customer.id)


def test_client_page_shows_points_next_reward_coupons_and_cards(app, client, shop, frozen):
    customer = _member(shop, 250, locale="en")
    Reward.create(store=shop, name="Free bath", points_price=200)
    Reward.create(store=shop, name="Free grooming", points_price=400)
    make_card(customer, kind="count", remaining_uses=4, expires_on=NOW.date() + timedelta(days=60))
    resp = client.get(_link(app, customer))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'data-points="250"' in html
    assert "Next reward: Free grooming" in html
    assert "150 more points to go." in html
    assert 'aria-valuenow="250"' in html and "width: 62%" in html
    assert "Free bath" in html and "Redeem" in html
    assert "4 uses left" in html
    assert resp.headers["Cache-Control"] == "private, no-store"


def test_client_page_speaks_the_clients_language(app, client, shop, frozen):
    customer = _member(shop, 0, locale="th")
    html = client.get(_link(app, customer)).get_data(as_text=True)
    assert '<html lang="th">' in html


def test_client_page_text_is_in_thai_for_a_thai_client(app, client, shop, frozen):
    customer = _member(shop, 450, locale="th")
    Reward.create(store=shop, name="อาบน้ำแมวฟรี", points_price=200)
    Reward.create(store=shop, name="ตัดขนฟรี", points_price=400)
    loyalty.redeem(customer, Reward.get(Reward.points_price == 200), NOW)
    html = client.get(_link(app, customer)).get_data(as_text=True)
    assert "ของรางวัลถัดไป: ตัดขนฟรี" in html and "อีก 150 คะแนน" in html
    assert "คูปองของฉัน" in html and ">แลก</button>" in html
    for english in ("Next reward", "more points to go", "My coupons", "Valid until", "Redeem"):
        assert english not in html


def test_client_page_falls_back_to_the_store_language(app, client, frozen):
    store = make_store("kl-salon", locale="ms")
    customer = make_customer(store, locale=None)
    html = client.get(_link(app, customer)).get_data(as_text=True)
    assert '<html lang="ms">' in html


def test_tampered_link_is_404_and_leaks_nothing(app, client, shop, frozen):
    customer = _member(shop)
    link = _link(app, customer)
    forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    resp = client.get(forged)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 404
    assert "Somying" not in html and "Happy Paws" not in html and "250" not in html


def test_link_for_another_customer_id_is_refused(app, client, shop, frozen):
    customer = _member(shop)
    other = make_customer(shop, name="Other")
    with app.app_context():
        loyalty.ensure_portal_secret(other)
        token = loyalty.portal_token(customer, NOW)
    # The payload names the customer; putting another id there breaks the signature.
    _payload, _dot, rest = token.partition(".")
    other_id = base64.urlsafe_b64encode(str(other.id).encode()).rstrip(b"=").decode()
    swapped = f"{other_id}.{rest}"
    assert client.get(f"/p/{swapped}").status_code == 404
    assert client.get("/p/garbage").status_code == 404


def test_expired_link_is_404(app, client, shop, frozen):
    customer = _member(shop)
    fresh = _link(app, customer, at=NOW - timedelta(days=89))
    stale = _link(app, customer, at=NOW - timedelta(days=91))
    assert client.get(fresh).status_code == 200
    resp = client.get(stale)
    assert resp.status_code == 404
    assert "Somying" not in resp.get_data(as_text=True)


def test_rotating_the_secret_invalidates_old_links(app, client, shop, frozen):
    customer = _member(shop)
    old = _link(app, customer)
    loyalty.rotate_portal_secret(customer)
    new = _link(app, Customer.get_by_id(customer.id))
    assert client.get(old).status_code == 404
    assert client.get(new).status_code == 200


def test_client_redeems_a_reward_and_sees_the_coupon(app, client, shop, frozen):
    customer = _member(shop, 250)
    reward = Reward.create(store=shop, name="Free bath", points_price=200)
    link = _link(app, customer)
    resp = client.post(
        f"{link}/redeem",
        data={"reward_id": reward.id, "nonce": "n1"},
        headers={"HX-Request": "true"},
    )
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in html
    coupon = Coupon.get()
    assert coupon.source == "portal" and coupon.code in html
    assert Customer.get_by_id(customer.id).points == 50


def test_client_redeem_without_points_is_422_with_the_fragment(app, client, shop, frozen):
    customer = _member(shop, 100)
    reward = Reward.create(store=shop, name="Free bath", points_price=200)
    resp = client.post(
        f"{_link(app, customer)}/redeem",
        data={"reward_id": reward.id},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 422
    assert 'id="portal"' in resp.get_data(as_text=True)
    assert Coupon.select().count() == 0


def test_client_redeem_full_post_redirects_back(app, client, shop, frozen):
    customer = _member(shop, 250)
    reward = Reward.create(store=shop, name="Free bath", points_price=200)
    link = _link(app, customer)
    resp = client.post(f"{link}/redeem", data={"reward_id": reward.id})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(link)


def test_two_clicks_at_once_redeem_only_once(app, shop, frozen):
    customer = _member(shop, 300)
    reward = Reward.create(store=shop, name="Free bath", points_price=200)
    link = _link(app, customer)
    barrier = threading.Barrier(2)
    statuses = []

    def click(nonce):
        local = app.test_client()
        barrier.wait()
        resp = local.post(
            f"{link}/redeem",
            data={"reward_id": reward.id, "nonce": nonce},
            headers={"HX-Request": "true"},
        )
        statuses.append(resp.status_code)

    threads = [threading.Thread(target=click, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 422]
    assert Coupon.select().count() == 1
    assert Customer.get_by_id(customer.id).points == 100


def test_portal_forms_need_the_csrf_token(csrf_app, frozen):
    store = make_store("csrf-shop")
    customer = make_customer(store)
    loyalty.adjust(customer, 300, "Opening", None, NOW)
    reward = Reward.create(store=store, name="Free bath", points_price=200)
    client = csrf_app.test_client()
    link = _link(csrf_app, customer)
    assert client.get(link).status_code == 200
    resp = client.post(f"{link}/redeem", data={"reward_id": reward.id})
    assert resp.status_code == 400
    assert Coupon.select().count() == 0


def test_opt_out_switch_withdraws_consent_and_suppresses_queued_messages(app, client, shop, frozen):
    customer = _member(shop, 0)
    Consent.create(customer=customer, channel="whatsapp", granted=True, source="api", at=NOW)
    Message.create(
        store=shop,
        customer=customer,
        channel="whatsapp",
        body="Your points",
        status="queued",
        idempotency_key="k1",
        created_at=NOW,
    )
    link = _link(app, customer)
    html = client.get(link).get_data(as_text=True)
    assert "WhatsApp: on" in html
    resp = client.post(
        f"{link}/consent",
        data={"channel": "whatsapp", "granted": "0"},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 200 and "WhatsApp: off" in resp.get_data(as_text=True)
    consent = Consent.get(Consent.customer == customer.id, Consent.channel == "whatsapp")
    assert consent.granted is False and consent.source == "portal"
    change = ConsentChange.select().order_by(ConsentChange.id.desc()).first()
    assert change.granted is False and change.source == "portal"
    assert Message.get().status == "suppressed"


def test_unknown_channel_is_422(app, client, shop, frozen):
    customer = _member(shop, 0)
    resp = client.post(
        f"{_link(app, customer)}/consent",
        data={"channel": "pigeon", "granted": "0"},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 422


def test_card_balance_is_shown_in_the_store_currency(app, client, shop, frozen):
    customer = _member(shop, 0, locale="en")
    make_card(customer, kind="stored_value", balance=Decimal("1500"))
    html = client.get(_link(app, customer)).get_data(as_text=True)
    assert "฿" in html and "THB" not in html


def test_client_page_as_htmx_fragment(app, client, shop, frozen):
    customer = _member(shop, 120)
    resp = client.get(_link(app, customer), headers={"HX-Request": "true"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in html
    assert html.lstrip().startswith('<div id="portal"') and 'data-points="120"' in html


def test_client_page_of_a_store_without_rewards_still_shows_the_balance(app, client, shop, frozen):
    customer = _member(shop, 40)
    html = client.get(_link(app, customer)).get_data(as_text=True)
    assert 'data-points="40"' in html and "Rewards are coming soon." in html
