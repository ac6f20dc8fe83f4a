"""Today, the follow-up card and the profile (top and history) at 360 px in English, Thai and Simplified Chinese.

Each page must fit the phone in every language. With REVISIT_DOC_SHOTS=1 the screenshots
are written to docs/screenshots/ (the README shows them):

    REVISIT_DOC_SHOTS=1 .venv/bin/pytest -p no:randomly tests/browser/test_screenshots.py
"""

import os
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from app import clock
from app.models import ContactLog, FollowUp, Plan
from app.services import events
from tests.browser.helpers import htmx_idle
from tests.factories import PASSWORD, make_card, make_customer, make_reason, make_staff, make_store

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class Salon:
    """What one language's screenshots show: a store, an employee and her clients."""

    store: dict
    employee: str
    plans: list[str]  # card expiry, refill, second visit, birthday
    clients: list[str]
    script: str
    card: str
    phone: str
    service: str
    note: str


SALONS = {
    "en": Salon(
        store=dict(name="Bunga Beauty KL", timezone="Asia/Kuala_Lumpur", region="MY"),
        employee="Aisyah",
        plans=["Card expiry reminder", "Lash refill (14 days)", "Second visit", "Birthday"],
        clients=["Tan Mei Ling", "Nurul Aisyah binti Ahmad", "Siti Rahmah", "Priya Devi"],
        script="Hi Mei Ling, your Lash card (RM 120.00 left) expires on 31 Dec. "
        "Shall I book your refill this week?",
        card="Lash prepaid card",
        phone="+6012345{n:04d}",
        service="Classic lash refill",
        note="Prefers Saturday mornings",
    ),
    "th": Salon(
        store=dict(
            name="ร้านขนตาสวย สาขาอารีย์", timezone="Asia/Bangkok", region="TH", currency="THB"
        ),
        employee="มาลี",
        plans=["บัตรใกล้หมดอายุ", "เติมขนตา (14 วัน)", "ชวนกลับมาครั้งที่สอง", "วันเกิด"],
        clients=["สมศรี ใจดี", "มาลัย ศรีสุข", "ปิยะนุช วงศ์ทอง", "กนกวรรณ แสงดาว"],
        script="สวัสดีค่ะคุณสมศรี บัตรขนตาของคุณ (เหลือ ฿1,200) จะหมดอายุวันที่ 31 ธ.ค. "
        "สะดวกจองเติมขนตาสัปดาห์นี้ไหมคะ",
        card="บัตรเติมเงินต่อขนตา",
        phone="+6681234{n:04d}",
        service="เติมขนตาแบบคลาสสิก",
        note="สะดวกวันเสาร์ช่วงเช้า",
    ),
    "zh_Hans": Salon(
        store=dict(name="花漾美睫 静安店", timezone="Asia/Shanghai", region="CN", currency="CNY"),
        employee="李娜",
        plans=["卡项到期提醒", "睫毛补种（14天）", "新客二次到店", "生日祝福"],
        clients=["王小红", "陈美玲", "张静怡", "刘芳"],
        script="小红您好，您的美睫卡（余额 ¥1,200）将于12月31日到期，这周帮您预约补睫吗？",
        card="美睫储值卡",
        phone="+86138001{n:05d}",
        service="经典睫毛补种",
        note="喜欢周六上午",
    ),
}


def build(lang: str):
    """One employee with four follow-ups; the first client has cards, visits and a contact."""
    s = SALONS[lang]
    store = make_store(f"shots-{lang}", settings={"followup_hour": "10:00"}, **s.store)
    staff = make_staff(
        "employee",
        [store],
        email=f"shots-{lang.lower().replace('_', '-')}@example.test",
        name=s.employee,
        locale=lang,
    )
    templates = ["card_expiry", "post_service", "second_visit", "birthday"]
    plans = [
        Plan.create(store=store, name=name, template=tpl, type="recurring", status="active")
        for name, tpl in zip(s.plans, templates, strict=True)
    ]
    now = clock.now()
    dues = [
        now - timedelta(days=1, hours=2),
        now + timedelta(minutes=30),
        now,
        now + timedelta(days=2),
    ]
    followups = []
    for n, (name, plan, due) in enumerate(zip(s.clients, plans, dues, strict=True)):
        customer = make_customer(
            store,
            name=name,
            phone=s.phone.format(n=n),
            source="Instagram" if n == 2 else None,
        )
        if n == 0:
            card = make_card(customer, "stored_value", balance=Decimal("120.00"))
            card.product.name = s.card
            card.product.save()
            card.expires_on = (now + timedelta(days=37)).date()
            card.save()
            for k, days in enumerate((75, 40, 12)):
                events.record_event(
                    store,
                    {
                        "external_id": f"shot-{lang}-{k}",
                        "type": "service_completed",
                        "customer": {"id": customer.id},
                        "occurred_at": (now - timedelta(days=days)).isoformat(),
                        "amount": "180.00",
                        "items": [{"sku": "REFILL", "name": s.service, "price": "180.00"}],
                    },
                    now,
                    source="ui",
                    staff=staff,
                    triggers_plans=False,
                )
            customer = type(customer).get_by_id(customer.id)
        f = FollowUp.create(
            store=store,
            customer=customer,
            plan=plan,
            assignee=staff,
            due_at=due,
            open_customer=customer.id,
            script=s.script if n == 0 else s.script.split(" ")[0],
        )
        make_reason(f, plan, script=f.script)
        followups.append(f)
    first = followups[0]
    ContactLog.create(
        followup=None,
        customer=first.customer_id,
        staff=staff,
        channel="whatsapp",
        outcome="reached",
        note=s.note,
        at=now - timedelta(days=12),
    )
    return staff, first


def _save(page, lang: str, name: str, tmp_path: Path) -> None:
    folder = DOCS if os.environ.get("REVISIT_DOC_SHOTS") == "1" else tmp_path
    path = folder / f"{name}-{lang}.png"
    page.screenshot(path=str(path))
    if folder == DOCS:
        from PIL import Image  # only needed to regenerate the docs: pip install pillow

        # 64 colours keep text sharp and the PNG about a third of its size.
        image = Image.open(path).convert("RGB")
        image = image.quantize(64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        image.save(path, optimize=True)


def overflowing(page) -> list[str]:
    """Visible elements that stick out of the 360 px viewport (empty when the page fits)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('body *')]
           .filter(el => el.checkVisibility({visibilityProperty: true}))
           .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
           .map(el => el.outerHTML.slice(0, 100))
           .concat(document.documentElement.scrollWidth > window.innerWidth ? ['scroll'] : [])"""
    )


@pytest.mark.parametrize("lang", list(SALONS))
def test_staff_screens_fit_the_phone_in_each_language(phone, lang, tmp_path):
    staff, f = build(lang)
    page = phone
    page.goto("/login")
    page.fill("input[name=email]", staff.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/today")
    assert page.locator("html").get_attribute("lang") == lang.replace("_", "-")
    assert page.locator("article.fu").count() == 4
    assert overflowing(page) == []
    _save(page, lang, "today", tmp_path)

    page.goto(f"/followups/{f.id}")
    assert SALONS[lang].script in page.locator(".script").first.inner_text()
    assert overflowing(page) == []
    _save(page, lang, "card", tmp_path)

    page.goto(f"/customers/{f.customer_id}")
    htmx_idle(page)
    assert SALONS[lang].service in page.locator("ol.timeline").inner_text()
    assert overflowing(page) == []
    _save(page, lang, "profile", tmp_path)
    page.evaluate("document.getElementById('timeline').scrollIntoView()")
    assert overflowing(page) == []
    _save(page, lang, "history", tmp_path)
