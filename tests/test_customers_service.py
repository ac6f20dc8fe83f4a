"""Customer write services: phones, create-or-update, validation, tags, consent, REFs."""

from datetime import date
from decimal import Decimal

import pytest

from app.models import (
    ALL_MODELS,
    Consent,
    ConsentChange,
    Customer,
    CustomerAttribute,
    CustomerTag,
    Tag,
)
from app.services import customers
from app.services.validation import ValidationError
from tests.factories import make_customer, make_staff, make_store, utc

NOW = utc(2026, 11, 24, 4, 0)


@pytest.fixture
def app(schema):
    """Empty tables and an open connection; these services need no Flask app."""
    empty_tables(schema)
    with schema.connection_context():
        yield schema


def empty_tables(database) -> None:
    """Delete every row of the app's tables that the migrations created."""
    with database.connection_context():
        existing = set(database.get_tables())
        tables = [m._meta.table_name for m in ALL_MODELS if m._meta.table_name in existing]
        if "sqlite" in type(database).__name__.lower():
            database.execute_sql("PRAGMA foreign_keys = OFF")
            with database.atomic():
                for table in tables:
                    database.execute_sql(f'DELETE FROM "{table}"')
            database.execute_sql("PRAGMA foreign_keys = ON")
        else:
            quoted = ", ".join(f'"{t}"' for t in tables)
            database.execute_sql(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("012-345 6789", "MY", "+60123456789"),
        ("0123456789", "MY", "+60123456789"),
        ("60123456789", "MY", "+60123456789"),
        ("+60 12-345 6789", "MY", "+60123456789"),
        ("0060123456789", "MY", "+60123456789"),
        ("(03) 2141 2345", "MY", "+60321412345"),
        ("081 234 5678", "TH", "+66812345678"),
        ("081-234-5678", "TH", "+66812345678"),
        ("+66 81 234 5678", "TH", "+66812345678"),
        ("66812345678", "TH", "+66812345678"),
        ("138 0013 8000", "CN", "+8613800138000"),
        ("13800138000", "CN", "+8613800138000"),
        ("+86 138-0013-8000", "CN", "+8613800138000"),
        ("１３８００１３８０００", "CN", "+8613800138000"),
        ("0912-345-678", "TW", "+886912345678"),
        ("0912345678", "TW", "+886912345678"),
        ("+886 912 345 678", "TW", "+886912345678"),
        ("9123 4567", "HK", "+85291234567"),
        ("+852 9123-4567", "HK", "+85291234567"),
        ("85291234567", "HK", "+85291234567"),
        ("+60123456789", "TH", "+60123456789"),
    ],
)
def test_normalize_phone_gives_e164_for_local_and_international_formats(raw, region, expected):
    assert customers.normalize_phone(raw, region) == expected


@pytest.mark.parametrize("raw", ["12345", "abc", "", "   ", "+60 1", "0" * 50])
def test_normalize_phone_rejects_invalid_numbers_with_a_clear_message(raw):
    with pytest.raises(ValueError) as info:
        customers.normalize_phone(raw, "MY")
    message = str(info.value)
    assert "phone" in message
    if raw.strip():
        assert "MY" in message


def test_normalize_phone_accepts_numbers_read_from_spreadsheets_as_floats():
    assert customers.normalize_phone(60123456789.0, "MY") == "+60123456789"


def test_upsert_creates_customer_with_every_contract_field(app):
    store = make_store(region="MY")
    staff = make_staff("employee", [store], email="aisyah@example.test")
    customer, created = customers.upsert_customer(
        store,
        {
            "external_id": "POS-1",
            "name": "Nur Aisyah",
            "phone": "012-345 6789",
            "gender": "female",
            "birthday": "1990-05-12",
            "source": "instagram",
            "level": "gold",
            "tags": ["VIP", "lash"],
            "attributes": {"hair_type": "curly"},
            "assigned_staff": "Aisyah@Example.test",
            "consent": {"whatsapp": True, "sms": False},
            "email": "nur@example.test",
            "line_id": "nur.line",
            "joined_at": "2025-01-02T10:00:00",
        },
        NOW,
    )
    assert created
    data = customers.customer_dict(customer)
    assert data["phone"] == "+60123456789"
    assert data["birthday"] == "1990-05-12"
    assert customer.birthday_md == 512
    assert data["tags"] == ["VIP", "lash"]
    assert data["attributes"] == {"hair_type": "curly"}
    assert data["assigned_staff"] == staff.email
    assert data["consent"] == {"whatsapp": True, "sms": False}
    assert data["joined_at"] == "2025-01-02T02:00:00+00:00"  # store time is UTC+8
    assert data["total_spend"] == "0.00"
    assert data["store"] == store.key
    assert ConsentChange.select().where(ConsentChange.customer == customer.id).count() == 2


def test_upsert_matches_by_external_id_before_phone(app):
    store = make_store()
    first, _ = customers.upsert_customer(
        store, {"external_id": "A1", "name": "Ali", "phone": "0123456789"}, NOW
    )
    again, created = customers.upsert_customer(
        store, {"external_id": "A1", "name": "Ali bin Abu", "phone": "0198765432"}, NOW
    )
    assert not created
    assert again.id == first.id
    assert again.name == "Ali bin Abu"
    assert again.phone == "+60198765432"
    assert Customer.select().count() == 1


def test_upsert_matches_by_normalised_phone_and_adopts_external_id(app):
    store = make_store()
    first, _ = customers.upsert_customer(store, {"name": "Mei", "phone": "+60 12-345 6789"}, NOW)
    again, created = customers.upsert_customer(
        store, {"external_id": "X9", "name": "Mei Ling", "phone": "0123456789"}, NOW
    )
    assert not created and again.id == first.id
    assert again.external_id == "X9"
    assert again.name == "Mei Ling"


def test_upsert_refuses_phone_belonging_to_another_customer(app):
    store = make_store()
    customers.upsert_customer(store, {"external_id": "A", "name": "A", "phone": "0123456789"}, NOW)
    customers.upsert_customer(store, {"external_id": "B", "name": "B", "phone": "0129999999"}, NOW)
    with pytest.raises(ValidationError) as info:
        customers.upsert_customer(
            store, {"external_id": "B", "name": "B", "phone": "0123456789"}, NOW
        )
    assert info.value.errors[0]["field"] == "phone"
    assert "another customer" in info.value.errors[0]["message"]
    assert Customer.get(Customer.external_id == "B").phone == "+60129999999"


def test_upsert_lists_every_bad_field_and_writes_nothing(app):
    store = make_store(region="MY")
    with pytest.raises(ValidationError) as info:
        customers.upsert_customer(
            store,
            {
                "name": "",
                "phone": "12345",
                "gender": "robot",
                "birthday": "1990-13-45",
                "assigned_staff": "nobody@example.test",
                "consent": {"pigeon": True},
                "email": "not-an-email",
                "tags": ["ok"],
            },
            NOW,
        )
    fields = {e["field"]: e["message"] for e in info.value.errors}
    assert set(fields) == {
        "name",
        "phone",
        "gender",
        "birthday",
        "assigned_staff",
        "consent.pigeon",
        "email",
    }
    assert fields["phone"] == "'12345' is not a valid phone number for region MY"
    assert "nobody@example.test" in fields["assigned_staff"]
    assert Customer.select().count() == 0
    assert Tag.select().count() == 0


def test_upsert_requires_name_and_phone_for_a_new_customer(app):
    store = make_store()
    with pytest.raises(ValidationError) as info:
        customers.upsert_customer(store, {"external_id": "E1"}, NOW)
    assert {e["field"] for e in info.value.errors} == {"name", "phone"}


def test_upsert_reports_unknown_tags_when_not_creating_them(app):
    store = make_store()
    Tag.create(store=store, name="VIP")
    with pytest.raises(ValidationError) as info:
        customers.upsert_customer(
            store,
            {"name": "A", "phone": "0123456789", "tags": ["VIP", "Ghost"]},
            NOW,
            create_missing_tags=False,
        )
    assert info.value.errors == [{"field": "tags", "message": "unknown tag(s): Ghost"}]
    assert Customer.select().count() == 0


def test_upsert_does_not_accept_staff_of_another_store(app):
    store, other = make_store(), make_store()
    make_staff("employee", [other], email="elsewhere@example.test")
    with pytest.raises(ValidationError) as info:
        customers.upsert_customer(
            store,
            {"name": "A", "phone": "0123456789", "assigned_staff": "elsewhere@example.test"},
            NOW,
        )
    assert info.value.errors[0]["field"] == "assigned_staff"


def test_upsert_twice_with_same_body_changes_nothing(app):
    store = make_store()
    body = {"name": "A", "phone": "0123456789", "tags": "VIP, 新客", "consent": {"sms": True}}
    customers.upsert_customer(store, body, NOW)
    customers.upsert_customer(store, body, utc(2026, 11, 25))
    assert Customer.select().count() == 1
    assert CustomerTag.select().count() == 2
    assert ConsentChange.select().count() == 1
    assert Customer.get().updated_at == NOW


def test_same_phone_in_two_stores_is_two_customers(app):
    one, two = make_store(), make_store()
    a, _ = customers.upsert_customer(one, {"name": "A", "phone": "0123456789"}, NOW)
    b, created = customers.upsert_customer(two, {"name": "A", "phone": "0123456789"}, NOW)
    assert created and a.id != b.id


def test_find_customer_never_reaches_another_store(app):
    one, two = make_store(), make_store()
    theirs = make_customer(two, phone="+60123456789", external_id="E1")
    for ref in ({"id": theirs.id}, {"external_id": "E1"}, {"phone": "0123456789"}):
        assert customers.find_customer(one, ref) is None
        assert customers.find_customer(two, ref).id == theirs.id
    assert customers.find_customer(one, {"phone": "garbage"}) is None
    assert customers.find_customer(one, {}) is None


def test_resolve_customer_says_what_was_not_found(app):
    store = make_store()
    with pytest.raises(ValidationError) as info:
        customers.resolve_customer(store, {"phone": "0123456789"})
    assert info.value.errors == [
        {"field": "customer", "message": "no customer with phone '0123456789' in this store"}
    ]


def test_set_consent_keeps_history_of_each_change(app):
    store = make_store()
    customer = make_customer(store)
    customers.set_consent(customer, "whatsapp", True, "form", NOW)
    customers.set_consent(customer, "whatsapp", True, "form", NOW)
    customers.set_consent(customer, "whatsapp", False, "reply STOP", utc(2026, 11, 25))
    consent = Consent.get(Consent.customer == customer.id)
    assert consent.granted is False and consent.source == "reply STOP"
    history = [c.granted for c in ConsentChange.select().order_by(ConsentChange.id)]
    assert history == [True, False]
    with pytest.raises(ValidationError):
        customers.set_consent(customer, "fax", True, "form", NOW)


def test_add_tags_reports_unknown_names_when_not_creating(app):
    store = make_store()
    customer = make_customer(store)
    Tag.create(store=store, name="VIP")
    unknown = customers.add_tags(customer, ["VIP", "Nope"], NOW, create_missing=False)
    assert unknown == ["Nope"]
    assert customers.customer_tags(customer) == ["VIP"]
    assert customers.add_tags(customer, ["lash", "VIP"], NOW) == []
    assert customers.customer_tags(customer) == ["VIP", "lash"]
    customers.remove_tags(customer, ["VIP", "never-existed"], NOW)
    assert customers.customer_tags(customer) == ["lash"]


def test_set_attributes_sets_updates_and_removes(app):
    store = make_store()
    customer = make_customer(store)
    customers.set_attributes(customer, {"car_type": "suv", "plate": "WXY 123"})
    customers.set_attributes(customer, {"car_type": "sedan", "plate": ""})
    rows = {a.key: a.value for a in CustomerAttribute.select()}
    assert rows == {"car_type": "sedan"}


def test_gender_and_birthday_accept_local_words_and_formats(app):
    store = make_store(region="TH", timezone="Asia/Bangkok")
    customer, _ = customers.upsert_customer(
        store,
        {"name": "สมหญิง", "phone": "0812345678", "gender": "หญิง", "birthday": "12/05/2533"},
        NOW,
    )
    assert customer.gender == "female"
    assert customer.birthday == date(1990, 5, 12)


def test_customer_dict_reports_money_as_string(app):
    store = make_store()
    customer = make_customer(store, total_spend=Decimal("12.5"))
    assert customers.customer_dict(customer)["total_spend"] == "12.50"


def test_fast_national_phone_path_agrees_with_full_phonenumbers_parse():
    import random

    import phonenumbers

    rng = random.Random(42)
    agreed = 0
    for _ in range(6000):
        region = rng.choice(["MY", "TH", "CN", "TW", "HK"])
        digits = rng.choice(["0", "01", "03", "08", "09", "1", "13", "15", "5", "6", "9", ""])
        digits += "".join(rng.choice("0123456789") for _ in range(rng.randint(5, 11)))
        raw = rng.choice(["", " ", "-"]).join([digits[:3], digits[3:7], digits[7:]]).strip(" -")
        fast = customers._national_phone(raw, region)
        if fast is None:
            continue
        reference = phonenumbers.parse(raw, region)
        assert phonenumbers.is_valid_number(reference), (raw, region)
        assert fast == phonenumbers.format_number(reference, phonenumbers.PhoneNumberFormat.E164)
        agreed += 1
    assert agreed > 300
