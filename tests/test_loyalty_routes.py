"""Staff loyalty screens: points on the profile, counter redemption, the manager's console."""

import re
import threading
from datetime import timedelta

import pytest

from app.models import Coupon, Customer, Event, PointsEntry, Reward, Store
from app.services import loyalty
from tests.factories import login, make_customer, make_staff, make_store, utc

NOW = utc(2026, 11, 24, 3, 0)
HX = {"HX-Request": "true"}


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setenv("REVISIT_NOW", NOW.isoformat())
    return NOW


@pytest.fixture
def salon(app, frozen):
    store = make_store("kl-salon", name="Bunga Beauty", currency="MYR")
    other = make_store("bkk", name="Other store")
    employee = make_staff("employee", [store], name="Aisyah")
    manager = make_staff("manager", [store], name="Farah")
    outsider = make_staff("employee", [other], name="Somchai")
    customer = make_customer(store, name="Mei Ling")
    loyalty.adjust(customer, 300, "Opening balance", None, NOW)
    reward = Reward.create(store=store, name="Free hair mask", points_price=200)
    return store, employee, manager, outsider, Customer.get_by_id(customer.id), reward


def _credited_order(customer, external_id: str, amount, at=NOW) -> Event:
    """A purchase of the customer, its points credited when it happened."""
    order = Event.create(
        store=customer.store_id,
        customer=customer,
        external_id=external_id,
        type="purchase",
        occurred_at=at,
        amount=amount,
    )
    loyalty.credit_for_event(order, at)
    return order


def test_points_page_full_and_fragment(app, salon):
    store, employee, _m, _o, customer, _r = salon
    client = app.test_client()
    login(client, employee)
    page = client.get(f"/customers/{customer.id}/points")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    fragment = client.get(f"/customers/{customer.id}/points", headers=HX)
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in html
    assert f'id="points-{customer.id}"' in html and 'data-points="300"' in html
    assert "Free hair mask" in html and "/p/" in html
    assert "HX-Request" in fragment.headers["Vary"]


def test_points_history_speaks_the_staff_language_and_names_the_order(app, salon):
    _s, employee, _m, _o, customer, _r = salon
    loyalty.credit_signup(customer, NOW)
    _credited_order(customer, "INV-42", 90)
    client = app.test_client()
    login(client, employee)
    client.post("/language", data={"lang": "th"})
    html = client.get(f"/customers/{customer.id}/points", headers=HX).get_data(as_text=True)
    assert "+90" in html and "INV-42" in html and "Opening balance" in html
    assert "Sign-up bonus" not in html and "Order INV-42" not in html


def test_employee_of_another_store_gets_404(app, salon):
    _s, _e, _m, outsider, customer, _r = salon
    client = app.test_client()
    login(client, outsider)
    assert client.get(f"/customers/{customer.id}/points").status_code == 404
    assert client.get(f"/customers/{customer.id}/portal-qr").status_code == 404


def test_staff_redeems_at_the_counter(app, salon):
    _s, employee, _m, _o, customer, reward = salon
    client = app.test_client()
    login(client, employee)
    resp = client.post(
        f"/customers/{customer.id}/points/redeem",
        data={"reward_id": reward.id, "nonce": "x1"},
        headers=HX,
    )
    html = resp.get_data(as_text=True)
    coupon = Coupon.get()
    assert resp.status_code == 200 and coupon.code in html
    assert coupon.issued_by_id == employee.id and coupon.source == "counter"
    assert Customer.get_by_id(customer.id).points == 100
    again = client.post(
        f"/customers/{customer.id}/points/redeem", data={"reward_id": reward.id}, headers=HX
    )
    assert again.status_code == 422 and "Not enough points" in again.get_data(as_text=True)


def test_a_double_submitted_counter_form_issues_one_coupon(app, salon):
    _s, employee, _m, _o, customer, reward = salon
    loyalty.adjust(customer, 500, "Top up", None, NOW)
    client = app.test_client()
    login(client, employee)
    for _ in range(2):
        client.post(
            f"/customers/{customer.id}/points/redeem",
            data={"reward_id": reward.id, "nonce": "same-form"},
            headers=HX,
        )
    assert Coupon.select().count() == 1
    assert Customer.get_by_id(customer.id).points == 600


def test_two_staff_redeeming_at_once_only_one_succeeds(app, salon):
    _s, employee, manager, _o, customer, reward = salon
    clients = []
    for staff in (employee, manager):
        c = app.test_client()
        login(c, staff)
        clients.append(c)
    barrier = threading.Barrier(2)
    statuses = []

    def click(c, nonce):
        barrier.wait()
        resp = c.post(
            f"/customers/{customer.id}/points/redeem",
            data={"reward_id": reward.id, "nonce": nonce},
            headers=HX,
        )
        statuses.append(resp.status_code)

    threads = [
        threading.Thread(target=click, args=(c, n)) for c, n in zip(clients, "ab", strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 422]
    assert Coupon.select().count() == 1
    assert Customer.get_by_id(customer.id).points == 100


def test_redeem_full_post_redirects_to_the_points_page(app, salon):
    _s, employee, _m, _o, customer, reward = salon
    client = app.test_client()
    login(client, employee)
    resp = client.post(f"/customers/{customer.id}/points/redeem", data={"reward_id": reward.id})
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith(f"/customers/{customer.id}/points")


def test_coupon_marked_used_once(app, salon):
    _s, employee, _m, _o, customer, reward = salon
    coupon = loyalty.redeem(customer, reward, NOW)
    client = app.test_client()
    login(client, employee)
    url = f"/customers/{customer.id}/coupons/{coupon.id}/use"
    assert client.post(url, headers=HX).status_code == 200
    assert Coupon.get_by_id(coupon.id).status == "used"
    second = client.post(url, headers=HX)
    assert second.status_code == 422 and "already used" in second.get_data(as_text=True)


def test_only_managers_adjust_points_and_need_a_reason(app, salon):
    _s, employee, manager, _o, customer, _r = salon
    client = app.test_client()
    login(client, employee)
    url = f"/customers/{customer.id}/points/adjust"
    assert client.post(url, data={"delta": "10", "reason": "x"}).status_code == 403
    client = app.test_client()
    login(client, manager)
    missing = client.post(url, data={"delta": "10", "reason": ""}, headers=HX)
    assert missing.status_code == 422
    ok = client.post(url, data={"delta": "-50", "reason": "Duplicate order"}, headers=HX)
    assert ok.status_code == 200
    assert Customer.get_by_id(customer.id).points == 250
    assert PointsEntry.get(PointsEntry.delta == -50).staff_id == manager.id


def test_portal_qr_is_svg_of_the_link(app, salon):
    _s, employee, _m, _o, customer, _r = salon
    client = app.test_client()
    login(client, employee)
    resp = client.get(f"/customers/{customer.id}/portal-qr")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("image/svg+xml")
    assert resp.get_data(as_text=True).lstrip().startswith("<svg")


def test_portal_qr_encodes_the_clients_own_link(app, salon):
    import qrcode
    import qrcode.image.svg
    from flask import url_for

    _s, employee, _m, _o, customer, _r = salon
    client = app.test_client()
    login(client, employee)
    svg = client.get(f"/customers/{customer.id}/portal-qr").get_data(as_text=True)
    with app.test_request_context():
        url = url_for("portal.show", token=loyalty.portal_token(customer, NOW), _external=True)
    expected = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    assert svg == expected.to_string(encoding="unicode")
    assert client.get(url.removeprefix("http://localhost")).status_code == 200


def test_rotating_the_link_from_the_profile(app, salon):
    _s, employee, _m, _o, customer, _r = salon
    client = app.test_client()
    login(client, employee)
    with app.app_context():
        old = loyalty.portal_path(customer, NOW)
    assert client.get(old).status_code == 200
    resp = client.post(f"/customers/{customer.id}/portal-link/rotate", headers=HX)
    assert resp.status_code == 200
    assert client.get(old).status_code == 404


def test_console_shows_issued_redeemed_liability_and_expiring(app, salon):
    store, _e, manager, _o, customer, reward = salon
    store.settings = {"loyalty.value_per_point": "0.05"}
    store.save()
    _credited_order(customer, "INV-9", 280, at=NOW - timedelta(days=340))
    loyalty.redeem(Customer.get_by_id(customer.id), reward, NOW)
    client = app.test_client()
    login(client, manager)
    page = client.get("/loyalty")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html
    assert 'data-stat="issued">580<' in html
    assert 'data-stat="redeemed">200<' in html
    assert 'data-stat="outstanding">380<' in html
    assert re.search(r"data-stat=\"liability\">[^<]*19\.00<", html)
    # The redemption used the oldest lot first: 80 of its 280 points are left to expire.
    assert 'data-expiring="30">80<' in html
    fragment = client.get("/loyalty", headers=HX)
    assert "<html" not in fragment.get_data(as_text=True)


def test_employees_cannot_open_the_console(app, salon):
    _s, employee, _m, _o, _c, _r = salon
    client = app.test_client()
    login(client, employee)
    assert client.get("/loyalty").status_code == 403
    assert (
        client.post("/loyalty/rewards", data={"name": "x", "points_price": "1"}).status_code == 403
    )


def test_manager_manages_the_rewards_catalogue(app, salon):
    store, _e, manager, _o, _c, reward = salon
    client = app.test_client()
    login(client, manager)
    bad = client.post("/loyalty/rewards", data={"name": "Tote", "points_price": "lots"}, headers=HX)
    assert bad.status_code == 422 and 'id="rewards"' in bad.get_data(as_text=True)
    made = client.post(
        "/loyalty/rewards",
        data={"name": "Tote bag", "points_price": "350", "stock": "5"},
        headers=HX,
    )
    assert made.status_code == 200 and "Tote bag" in made.get_data(as_text=True)
    tote = Reward.get(Reward.name == "Tote bag")
    assert tote.points_price == 350 and tote.stock == 5 and tote.store_id == store.id
    client.post(
        f"/loyalty/rewards/{tote.id}",
        data={"name": "Tote bag", "points_price": "300", "stock": "", "active": ["0"]},
        headers=HX,
    )
    tote = Reward.get_by_id(tote.id)
    assert tote.points_price == 300 and tote.stock is None and tote.active is False
    client.post(f"/loyalty/rewards/{tote.id}/delete", headers=HX)
    assert Reward.get_or_none(Reward.id == tote.id) is None
    loyalty.redeem(Customer.get(Customer.name == "Mei Ling"), reward, NOW)
    client.post(f"/loyalty/rewards/{reward.id}/delete", headers=HX)
    assert Reward.get_by_id(reward.id).active is False


def test_saving_tiers_gives_customers_their_level_at_once(app, salon):
    store, _e, manager, _o, customer, _r = salon
    _credited_order(customer, "T-1", 600)
    client = app.test_client()
    login(client, manager)
    resp = client.post("/loyalty/settings", data={"loyalty.tiers": "Silver | 500 |\nGold | 2000 |"})
    assert resp.status_code == 303
    assert Customer.get_by_id(customer.id).level == "Silver"


def test_manager_of_another_store_cannot_touch_the_catalogue(app, salon):
    _s, _e, _m, _o, _c, reward = salon
    other_manager = make_staff("manager", [Store.get(Store.key == "bkk")])
    client = app.test_client()
    login(client, other_manager)
    resp = client.post(f"/loyalty/rewards/{reward.id}", data={"name": "x", "points_price": "1"})
    assert resp.status_code == 404
    assert client.post(f"/loyalty/rewards/{reward.id}/delete").status_code == 404


def test_manager_saves_points_rules(app, salon):
    store, _e, manager, _o, _c, _r = salon
    client = app.test_client()
    login(client, manager)
    resp = client.post(
        "/loyalty/settings",
        data={
            "loyalty.enabled": ["1", "0"],
            "loyalty.signup_bonus": "80",
            "loyalty.points_per_unit": "2",
            "loyalty.refund_expired_coupons": ["0"],
            "loyalty.tiers": "Silver | 500 |\nGold | 2000 | 1500",
            "loyalty.campaigns": "Merdeka | 2027-08-31 | 2027-08-31 | 3",
        },
    )
    assert resp.status_code == 303
    store = Store.get_by_id(store.id)
    assert store.setting("loyalty.signup_bonus") == 80
    assert store.setting("loyalty.points_per_unit") == "2"
    assert store.setting("loyalty.enabled") is True
    assert store.setting("loyalty.tiers") == [
        {"name": "Silver", "min_points": 500},
        {"name": "Gold", "min_points": 2000, "min_spend": "1500"},
    ]
    assert store.setting("loyalty.campaigns")[0]["multiplier"] == 3
    bad = client.post("/loyalty/settings", data={"loyalty.coupon_days": "-3"}, headers=HX)
    assert bad.status_code == 422


def test_a_coupon_code_typed_in_the_client_search_finds_the_coupon_to_mark_used(app, salon):
    store, employee, _m, outsider, customer, reward = salon
    coupon = loyalty.redeem(customer, reward, NOW)
    client = app.test_client()
    login(client, employee)
    typed = f" {coupon.code[:4].lower()} {coupon.code[4:].lower()} "  # as read out at the counter
    html = client.get("/customers", query_string={"q": typed}, headers=HX).get_data(as_text=True)
    card = re.search(r'<section class="card coupon-match".*?</section>', html, re.S).group(0)
    assert coupon.code in card and "Free hair mask" in card and "Mei Ling" in card
    assert f"/customers/{customer.id}/coupons/{coupon.id}/use" in card
    assert "No clients found." not in html
    used = client.post(f"/customers/{customer.id}/coupons/{coupon.id}/use")
    assert used.status_code == 303
    page = client.get(used.headers["Location"]).get_data(as_text=True)
    assert f"Coupon {coupon.code} used." in page
    again = client.get("/customers", query_string={"q": coupon.code}, headers=HX)
    card = re.search(
        r'<section class="card coupon-match".*?</section>', again.get_data(as_text=True), re.S
    ).group(0)
    assert "Already used on" in card and "/use" not in card
    # Another store's employee finds nothing by the code.
    other = app.test_client()
    login(other, outsider)
    theirs = other.get("/customers", query_string={"q": coupon.code}, headers=HX)
    assert "coupon-match" not in theirs.get_data(as_text=True)


def test_an_expired_coupon_found_by_code_says_so_and_cannot_be_marked_used(app, salon):
    _s, employee, _m, _o, customer, reward = salon
    coupon = loyalty.redeem(customer, reward, NOW - timedelta(days=40))
    client = app.test_client()
    login(client, employee)
    html = client.get("/customers", query_string={"q": coupon.code}, headers=HX).get_data(
        as_text=True
    )
    card = re.search(r'<section class="card coupon-match".*?</section>', html, re.S).group(0)
    assert "Expired on" in card and "/use" not in card
