"""Plain make_* helpers for tests."""

import itertools
from datetime import UTC, datetime
from decimal import Decimal

from app.models import (
    CardProduct,
    ChannelSetting,
    Customer,
    CustomerCard,
    Decision,
    FollowUpReason,
    Occurrence,
    Staff,
    StaffStore,
    Store,
)
from app.services import auth

_seq = itertools.count(1)
PASSWORD = "correct horse battery"
_HASHES: dict[str, str] = {}


def password_hash(password: str) -> str:
    """Argon2 is slow on purpose; hash each test password once per session."""
    if password not in _HASHES:
        _HASHES[password] = auth.hash_password(password)
    return _HASHES[password]


def make_store(key: str | None = None, **kw) -> Store:
    n = next(_seq)
    defaults = dict(
        key=key or f"store{n}",
        name=f"Store {n}",
        timezone="Asia/Kuala_Lumpur",
        region="MY",
        currency="MYR",
        locale="en",
        settings={},
    )
    defaults.update(kw)
    return Store.create(**defaults)


def switch_on_channels(store: Store, *channels: str) -> Store:
    """Mark message channels set up and switched on (the engine only queues on those); the
    four consent channels when none are named. Sending still needs a provider (see wa)."""
    for channel in channels or ("whatsapp", "line", "sms", "email"):
        ChannelSetting.create(store=store.id, channel=channel, enabled=True, config={})
    return store


def make_staff(
    role: str = "employee", stores=(), email: str | None = None, password: str = PASSWORD, **kw
) -> Staff:
    n = next(_seq)
    staff = Staff.create(
        email=email or f"staff{n}@example.test",
        name=kw.pop("name", f"Staff {n}"),
        role=role,
        password_hash=password_hash(password),
        **kw,
    )
    for store in stores:
        StaffStore.create(staff=staff, store=store)
    return staff


def make_customer(store: Store, **kw) -> Customer:
    n = next(_seq)
    defaults = dict(store=store, name=f"Customer {n}", phone=f"+6012{n:07d}")
    defaults.update(kw)
    if defaults.get("birthday") is not None and "birthday_md" not in kw:
        b = defaults["birthday"]
        defaults["birthday_md"] = b.month * 100 + b.day
    return Customer.create(**defaults)


def make_card(customer: Customer, kind: str = "count", **kw) -> CustomerCard:
    n = next(_seq)
    product = kw.pop("product", None) or CardProduct.create(
        store=customer.store_id,
        sku=f"SKU{n}",
        name=f"{kind} card {n}",
        kind=kind,
        uses=10 if kind == "count" else None,
        value=Decimal("1000") if kind == "stored_value" else None,
    )
    defaults = dict(store=customer.store_id, customer=customer, product=product)
    if kind == "count":
        defaults["remaining_uses"] = 10
    if kind == "stored_value":
        defaults["balance"] = Decimal("1000")
    defaults.update(kw)
    return CustomerCard.create(**defaults)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def login(client, staff: Staff, password: str = PASSWORD):
    resp = client.post("/login", data={"email": staff.email, "password": password})
    assert resp.status_code == 303, resp.data[:500]
    return resp


def make_reason(followup, plan, text: str = "", script: str = "", occurrence=None):
    """A reason on `followup`, with the plan decision it stands for (its plan and occurrence)."""
    n = next(_seq)
    if occurrence is None:
        occurrence = Occurrence.create(
            plan=plan, key=f"test-{n}", scheduled_for=datetime(2026, 1, 1, tzinfo=UTC)
        )
    decision = Decision.create(
        plan=plan,
        occurrence=occurrence,
        customer=followup.customer_id,
        dedupe_key=f"test-{n}",
        outcome="followup",
    )
    return FollowUpReason.create(followup=followup, decision=decision, text=text, script=script)
