"""The importer: encodings, Excel, header mapping, per-row errors, merging, resuming."""

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.models import (
    CardLedger,
    Customer,
    CustomerAttribute,
    CustomerCard,
    CustomerTag,
    Event,
    Tag,
    Visit,
)
from app.services import cards, customers, hooks, importing
from app.services.validation import ValidationError
from tests.factories import make_customer, make_store, utc
from tests.test_customers_service import empty_tables

DATA = Path(__file__).parent / "data"
NOW = utc(2026, 11, 24, 4, 0)


@pytest.fixture
def app(schema):
    """Empty tables and an open connection; these services need no Flask app."""
    empty_tables(schema)
    with schema.connection_context():
        yield schema


@pytest.fixture
def fired(monkeypatch):
    """Record events handed to the plan engine's hook."""
    calls = []
    monkeypatch.setattr(hooks, "after_event", lambda event, now: calls.append(event.external_id))
    return calls


def names_by_phone(store):
    return {c.phone: c.name for c in Customer.select().where(Customer.store == store.id)}


def csv_bytes(rows: list[list]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8")


def test_utf8_bom_file_with_malay_headers_and_semicolons_imports(app):
    store = make_store(region="MY")
    report = importing.import_file("customers", DATA / "customers_utf8_bom.csv", store, NOW)
    assert (report.created, report.rejected) == (3, 0)
    aisyah = Customer.get(Customer.phone == "+60123456789")
    assert aisyah.name == "Nur Aisyah binti Ahmad"
    assert aisyah.birthday == date(1990, 5, 12) and aisyah.gender == "female"
    assert customers.customer_tags(aisyah) == ["VIP", "rambut"]
    assert CustomerAttribute.get(CustomerAttribute.customer == aisyah.id).value == "myvi"


def test_gbk_file_with_simplified_chinese_imports(app):
    store = make_store(region="CN", timezone="Asia/Shanghai")
    report = importing.import_file("customers", DATA / "customers_gbk.csv", store, NOW)
    assert report.rejected == 0, report.errors
    zhang = Customer.get(Customer.phone == "+8613800138000")
    assert zhang.name == "张伟" and zhang.gender == "male" and zhang.notes == "老客户"
    assert zhang.birthday == date(1990, 5, 12)
    assert customers.customer_tags(zhang) == ["VIP", "烫发"]


def test_big5_tab_separated_file_with_traditional_chinese_imports(app):
    store = make_store(region="TW", timezone="Asia/Taipei")
    table = importing.read_table(DATA / "customers_big5.csv")
    assert table.delimiter == "\t"
    report = importing.import_file("customers", DATA / "customers_big5.csv", store, NOW)
    assert report.created == 3
    assert names_by_phone(store)["+886912345678"] == "陳美玲"


def test_tis620_file_with_thai_names_and_buddhist_years_imports(app):
    store = make_store(region="TH", timezone="Asia/Bangkok")
    report = importing.import_file("customers", DATA / "customers_tis620.csv", store, NOW)
    assert report.created == 3, report.errors
    somying = Customer.get(Customer.phone == "+66812345678")
    assert somying.name == "สมหญิง ใจดี" and somying.birthday == date(1990, 5, 12)
    assert customers.customer_tags(somying) == ["VIP"]


def test_explicit_encoding_overrides_detection(app):
    raw = (DATA / "customers_big5.csv").read_bytes()
    table = importing.read_table(raw, "x.csv", encoding="big5")
    assert table.rows[0][0] == "陳美玲"
    with pytest.raises(ValueError, match="could not be read as utf-8"):
        importing.read_table(raw, "x.csv", encoding="utf-8")


def test_xlsx_file_with_numbers_dates_and_attributes_imports(app):
    store = make_store(region="MY")
    report = importing.import_file("customers", DATA / "customers.xlsx", store, NOW)
    assert report.created == 3, report.errors
    tan = Customer.get(Customer.external_id == "M-001")
    assert tan.phone == "+60123456789" and tan.name == "Tan Mei Ling 陈美玲"
    assert tan.birthday == date(1990, 5, 12)
    assert CustomerAttribute.get(CustomerAttribute.customer == tan.id).key == "Car type"
    assert Customer.get(Customer.external_id == "M-002").phone == "+66812345678"


def test_suggest_mapping_recognises_headers_in_four_languages():
    mapping = importing.suggest_mapping(
        "customers",
        ["名字", "電話", "วันเกิด", "Tag", "nama pelanggan", "Car type", "เบอร์โทร"],
    )
    assert mapping["名字"] == "name"
    assert mapping["電話"] == "phone"
    assert mapping["วันเกิด"] == "birthday"
    assert mapping["Tag"] == "tags"
    # A second column for a field already taken becomes an attribute rather than a clash.
    assert mapping["nama pelanggan"] == "attributes.nama pelanggan"
    assert mapping["Car type"] == "attributes.Car type"
    events = importing.suggest_mapping("events", ["訂單編號", "手機", "消費時間", "金額"])
    assert events == {
        "訂單編號": "external_id",
        "手機": "customer.phone",
        "消費時間": "occurred_at",
        "金額": "amount",
    }


def test_check_mapping_names_missing_and_unknown_targets():
    problems = importing.check_mapping("cards", {"a": "balance", "b": "colour", "c": "balance"})
    assert "Column 'b' is mapped to an unknown field 'colour'." in problems
    assert "More than one column is mapped to 'balance'." in problems
    assert any("'product'" in p for p in problems)


def test_bad_rows_are_reported_by_line_and_good_rows_land(app):
    store = make_store(region="MY")
    report = importing.import_file("customers", DATA / "customers_bad.csv", store, NOW)
    lines = {e.line: e for e in report.errors}
    assert lines[3].message == "phone: '12345' is not a valid phone number for region MY"
    assert lines[4].field == "birthday"
    assert lines[5].message == "name: name is required"
    assert lines[7].field == "birthday"
    assert lines[8].field == "email"
    assert report.rejected == 5
    # Line 6 repeats line 2's phone: merged into the same customer, never a second one.
    assert (report.created, report.merged) == (1, 1)
    assert report.landed == [2, 6]
    good = Customer.get(Customer.phone == "+60123456789")
    assert good.name == "Good One Again"
    assert customers.customer_tags(good) == ["VIP", "lash"]
    assert Customer.select().count() == 1


def test_rejected_csv_has_reason_column_and_neutralises_formulas(app):
    store = make_store(region="MY")
    report = importing.import_file("customers", DATA / "customers_bad.csv", store, NOW)
    rows = list(csv.reader(io.StringIO(report.rejected_csv())))
    assert rows[0] == ["name", "phone", "birthday", "tags", "email", "error"]
    assert len(rows) == 6
    evil = next(r for r in rows if "HYPERLINK" in r[0])
    assert evil[0].startswith("'=")
    assert "line 7" in evil[-1]
    for row in rows[1:]:
        assert not row[-1].startswith(("=", "+", "-", "@"))


def test_fixed_rejected_csv_can_be_uploaded_again(app):
    store = make_store(region="MY")
    report = importing.import_file("customers", DATA / "customers_bad.csv", store, NOW)
    fixed = report.rejected_csv().replace("12345", "0127777777").replace("not-a-date", "")
    table = importing.read_table(fixed.encode("utf-8"), "fixed.csv")
    assert table.rows[4 - 1][0] == '=HYPERLINK("http://evil")'
    mapping = importing.suggest_mapping("customers", table.headers)
    mapping["error"] = None
    again = importing.import_rows("customers", store, table, mapping, NOW)
    assert again.created == 2  # the fixed phone and the formula-named row
    assert Customer.get(Customer.phone == "+60127777777").name == "Bad Phone"


@pytest.mark.parametrize(
    "cell", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "plain", None]
)
def test_csv_safe_neutralises_formula_injection(cell):
    value = importing.csv_safe(cell)
    assert not value.startswith(("=", "+", "-", "@", "\t", "\r"))
    if cell and cell[0] in "=+-@\t":
        assert value == "'" + cell


def test_reimporting_the_same_file_changes_nothing(app):
    store = make_store(region="MY")
    first = importing.import_file("customers", DATA / "customers.xlsx", store, NOW)
    before = list(Customer.select().order_by(Customer.id).dicts())
    second = importing.import_file("customers", DATA / "customers.xlsx", store, utc(2026, 11, 25))
    assert first.created == 3
    assert (second.created, second.updated, second.unchanged) == (0, 0, 3)
    assert list(Customer.select().order_by(Customer.id).dicts()) == before


def test_import_updates_existing_customer_matched_by_phone(app):
    store = make_store(region="MY")
    existing = make_customer(store, name="Old name", phone="+60123456789")
    report = importing.import_file("customers", DATA / "customers_utf8_bom.csv", store, NOW)
    assert (report.created, report.updated) == (2, 1)
    assert Customer.get_by_id(existing.id).name == "Nur Aisyah binti Ahmad"
    assert Customer.select().count() == 3


def test_unknown_tags_are_reported_when_not_creating_them(app):
    store = make_store(region="MY")
    Tag.create(store=store, name="VIP")
    report = importing.import_file(
        "customers", DATA / "customers_utf8_bom.csv", store, NOW, create_tags=False
    )
    messages = {e.line: e.message for e in report.errors}
    assert messages == {2: "tag: unknown tag(s): rambut", 3: "tag: unknown tag(s): baru"}
    assert report.created == 1
    assert Tag.select().count() == 1


def test_report_names_the_tags_an_import_created_with_how_many_clients_got_each(app):
    store = make_store(region="MY")
    Tag.create(store=store, name="vip", created_at=NOW)
    rows = [
        ["name", "phone", "tags"],
        ["Aisyah", "0121000001", "VIP ,lash"],
        ["Bella", "0121000002", "vip"],
        ["Chen", "0121000003", "VIP"],
        ["Dewi", "0121000004", "lash"],
        ["Eng", "0121000005", "lash"],
    ]
    table = importing.read_table(csv_bytes(rows), "c.csv")
    mapping = importing.suggest_mapping("customers", table.headers)
    check = importing.import_rows(
        "customers", store, table, mapping, NOW, {"batch_size": 2, "dry_run": True}
    )
    assert check.tags_created == {"VIP": 2, "lash": 3}
    assert Tag.select().count() == 1  # the check created nothing
    report = importing.import_rows("customers", store, table, mapping, NOW, {"batch_size": 2})
    assert report.tags_created == {"VIP": 2, "lash": 3}
    assert report.to_dict()["tags_created"] == {"VIP": 2, "lash": 3}
    assert sorted(t.name for t in Tag.select()) == ["VIP", "lash", "vip"]


def test_a_reimport_creates_no_tags_and_names_none(app):
    store = make_store(region="MY")
    rows = [["name", "phone", "tags"], ["Aisyah", "0121000001", "VIP"]]
    table = importing.read_table(csv_bytes(rows), "c.csv")
    mapping = importing.suggest_mapping("customers", table.headers)
    first = importing.import_rows("customers", store, table, mapping, NOW)
    assert first.tags_created == {"VIP": 1}
    rows.append(["Bella", "0121000002", "VIP"])
    again = importing.import_rows(
        "customers", store, importing.read_table(csv_bytes(rows), "c.csv"), mapping, NOW
    )
    assert again.created == 1 and again.tags_created == {}
    assert Tag.select().count() == 1


def test_rejecting_unknown_tags_creates_none_and_names_none(app):
    store = make_store(region="MY")
    Tag.create(store=store, name="VIP", created_at=NOW)
    report = importing.import_file(
        "customers", DATA / "customers_utf8_bom.csv", store, NOW, create_tags=False
    )
    assert report.rejected == 2 and report.tags_created == {}


def test_batches_report_progress_and_cancel_between_batches(app):
    store = make_store(region="MY")
    rows = [["name", "phone"]] + [[f"C{i}", f"012{i:07d}"] for i in range(10)]
    table = importing.read_table(csv_bytes(rows), "c.csv")
    mapping = importing.suggest_mapping("customers", table.headers)
    progress = []
    report = importing.import_rows(
        "customers",
        store,
        table,
        mapping,
        NOW,
        {
            "batch_size": 3,
            "on_progress": lambda done, total: progress.append((done, total)),
            "should_cancel": lambda: len(progress) >= 2,
        },
    )
    assert progress == [(3, 10), (6, 10)]
    assert report.cancelled and report.next_row == 6
    assert report.landed == [2, 3, 4, 5, 6, 7]
    assert Customer.select().count() == 6
    resumed = importing.import_rows(
        "customers", store, table, mapping, NOW, {"batch_size": 3, "resume_from": report.next_row}
    )
    assert resumed.created == 4 and resumed.landed == [8, 9, 10, 11]
    assert Customer.select().count() == 10


def test_resuming_from_an_earlier_row_never_doubles(app):
    store = make_store(region="MY")
    rows = [["name", "phone", "tags"]] + [[f"C{i}", f"012{i:07d}", "VIP"] for i in range(8)]
    table = importing.read_table(csv_bytes(rows), "c.csv")
    mapping = importing.suggest_mapping("customers", table.headers)
    importing.import_rows("customers", store, table, mapping, NOW, {"batch_size": 4})
    # The worker died after batch 1 was committed but before its progress was saved.
    again = importing.import_rows(
        "customers", store, table, mapping, NOW, {"batch_size": 4, "resume_from": 0}
    )
    assert again.unchanged == 8
    assert Customer.select().count() == 8 and CustomerTag.select().count() == 8


def test_dry_run_counts_what_the_real_import_then_does(app):
    store = make_store(region="MY")
    first = (
        "external id,name,phone,tags,car_type,whatsapp\n"
        "M1,Aisyah,0121000001,VIP,suv,yes\n"
        "M2,Mei Ling,0121000002,,sedan,\n"
        "M3,Farah,0121000003,lash,,no\n"
    )
    second = (
        "external id,name,phone,tags,car_type,whatsapp\n"
        "M1,Aisyah,0121000001,VIP,suv,yes\n"  # unchanged
        "M2,Mei Ling,0121000002,nail,sedan,\n"  # updated: a tag
        "M3,Farah,0121000003,lash,,yes\n"  # updated: consent
        "M4,Siti,0121000004,,mpv,\n"  # created
        "M4,Siti Rahmah,0121000004,,,\n"  # merged
        "M5,Bad,12,,,\n"  # rejected
        ",Nurul,0121000005,,,\n"  # created
        "M6,Huda,0121000002,,,\n"  # rejected: M2's phone
    )
    for text in (first, second):
        table = importing.read_table(text.encode(), "c.csv")
        mapping = importing.suggest_mapping("customers", table.headers)
        options = {"batch_size": 3}
        check = importing.import_rows(
            "customers", store, table, mapping, NOW, dict(options, dry_run=True)
        )
        saved_before = Customer.select().count()
        real = importing.import_rows("customers", store, table, mapping, NOW, options)
        counts = ("created", "updated", "unchanged", "merged", "rejected")
        assert [getattr(check, c) for c in counts] == [getattr(real, c) for c in counts]
        assert Customer.select().count() == saved_before + real.created
    assert [getattr(real, c) for c in counts] == [2, 2, 1, 1, 2]


def test_dry_run_validates_without_saving(app):
    store = make_store(region="MY")
    report = importing.import_file(
        "customers", DATA / "customers_bad.csv", store, NOW, dry_run=True
    )
    assert (report.created, report.merged, report.rejected) == (1, 1, 5)
    assert "nothing would be saved" in report.summary()
    assert Customer.select().count() == 0


def test_cards_import_issues_cards_and_reports_unknown_products(app):
    store = make_store(region="MY")
    make_customer(store, phone="+60123456789")
    make_customer(store, phone="+60198765432")
    cards.upsert_product(
        store, {"sku": "LASH10", "name": "Lash x10", "kind": "count", "uses": 10}, NOW
    )
    cards.upsert_product(store, {"sku": "SV500", "name": "Stored 500", "kind": "stored_value"}, NOW)
    report = importing.import_file("cards", DATA / "cards.csv", store, NOW)
    messages = {e.line: e.message for e in report.errors}
    assert messages[4] == "card type: unknown card product 'NOPE'"
    assert messages[5] == "phone: no customer with phone '0170000000' in this store"
    assert report.created == 2
    lash = CustomerCard.get(CustomerCard.external_id == "C-1")
    assert lash.remaining_uses == 7 and lash.expires_on == date(2027, 6, 30)
    assert CustomerCard.get(CustomerCard.external_id == "C-2").balance == Decimal("320.50")
    again = importing.import_file("cards", DATA / "cards.csv", store, NOW)
    assert again.unchanged == 2 and CustomerCard.select().count() == 2
    assert CardLedger.select().count() == 2


def test_events_history_import_builds_visits_without_firing_plans(app, fired):
    store = make_store(region="MY", timezone="Asia/Kuala_Lumpur")
    first = make_customer(store, phone="+60123456789")
    make_customer(store, phone="+60198765432")
    report = importing.import_file("events", DATA / "events.csv", store, NOW)
    messages = {e.line: e.message for e in report.errors}
    assert set(messages) == {6, 7}
    assert messages[7].startswith("date: 'someday' is not a valid date")
    assert report.created == 4
    assert fired == []
    first = Customer.get_by_id(first.id)
    assert first.visit_count == 2  # two events on 5 January are one visit
    assert first.total_spend == Decimal("200.00")
    assert first.last_visit_at == utc(2026, 3, 1, 1, 30)
    assert Event.get(Event.external_id == "O-3").amount == Decimal("1200.50")
    assert Event.get(Event.external_id == "O-2").type == "service_completed"
    again = importing.import_file("events", DATA / "events.csv", store, NOW)
    assert again.unchanged == 4 and Event.select().count() == 4
    assert Visit.select().count() == 3


def test_events_import_can_trigger_plans_when_asked(app, fired):
    store = make_store(region="MY")
    make_customer(store, phone="+60123456789")
    make_customer(store, phone="+60198765432")
    importing.import_file("events", DATA / "events.csv", store, NOW, triggers_plans=True)
    assert fired == ["O-1", "O-2", "O-3", "O-4"]


def test_events_without_ids_get_stable_ids_so_reimport_is_idempotent(app, fired):
    store = make_store(region="MY")
    make_customer(store, phone="+60123456789")
    rows = [["phone", "date"], ["0123456789", "2026-01-05"], ["0123456789", "2026-01-05"]]
    raw = csv_bytes(rows)
    for _ in range(2):
        table = importing.read_table(raw, "e.csv")
        importing.import_rows(
            "events", store, table, importing.suggest_mapping("events", table.headers), NOW
        )
    assert Event.select().count() == 2


def test_mapping_without_required_columns_is_refused(app):
    store = make_store()
    table = importing.read_table(csv_bytes([["colour"], ["red"]]), "x.csv")
    with pytest.raises(ValidationError) as info:
        importing.import_rows("customers", store, table, {"colour": None}, NOW)
    assert info.value.errors[0]["field"] == "mapping"


def test_empty_and_broken_files_give_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        importing.read_table(b"\n\n", "x.csv")
    with pytest.raises(ValueError, match="Excel"):
        importing.read_table(b"PK\x03\x04not really a zip", "x.xlsx")


cell = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["0123456789", "+60 12-345 6789", "12345", "=cmd|' /C calc'!A0", "@SUM(1)"]),
    st.sampled_from(["1990-05-12", "31/02/1990", "2533-05-12", "", "女", "VIP, 新客"]),
    st.text(min_size=300, max_size=3000),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(cell, min_size=0, max_size=7), min_size=1, max_size=12))
def test_malformed_rows_never_crash_and_every_row_lands_or_is_reported(app, rows):
    empty_tables(app)
    store = make_store(region="MY")
    headers = ["name", "phone", "birthday", "gender", "tags", "email", "notes"]
    raw = csv_bytes([headers] + rows)
    table = importing.read_table(raw, "fuzz.csv")
    mapping = importing.suggest_mapping("customers", table.headers)
    report = importing.import_rows("customers", store, table, mapping, NOW, {"batch_size": 5})
    rejected_lines = {e.line for e in report.errors}
    assert len(rejected_lines) == report.rejected
    assert sorted(set(report.landed) | rejected_lines) == sorted(table.lines)
    assert not set(report.landed) & rejected_lines
    assert report.created + report.updated + report.unchanged + report.merged == len(report.landed)
    for line in csv.reader(io.StringIO(report.rejected_csv())):
        assert not any(c.startswith(("=", "+", "-", "@")) for c in line)
    assert Customer.select().count() == report.created


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_either_read_or_raise_value_error(data):
    try:
        table = importing.read_table(data, "junk.csv")
    except ValueError:
        return
    assert table.headers


def test_duplicates_across_batches_merge_last_value_wins_and_reimport_changes_nothing(app):
    store = make_store(region="MY")
    rows = [
        ["member id", "name", "phone", "tags"],
        ["M1", "First spelling", "0123456789", "VIP"],
        ["M2", "Other", "0129999999", ""],
        ["M3", "Third", "0128888888", ""],
        ["M1", "Final spelling", "0123456789", "lash"],
    ]
    table = importing.read_table(csv_bytes(rows), "d.csv")
    mapping = importing.suggest_mapping("customers", table.headers)
    first = importing.import_rows("customers", store, table, mapping, NOW, {"batch_size": 2})
    assert (first.created, first.merged) == (3, 1)
    customer = Customer.get(Customer.external_id == "M1")
    assert customer.name == "Final spelling"
    assert customers.customer_tags(customer) == ["VIP", "lash"]
    before = list(Customer.select().order_by(Customer.id).dicts())
    again = importing.import_rows(
        "customers", store, table, mapping, utc(2026, 11, 25), {"batch_size": 2}
    )
    assert (again.created, again.updated, again.unchanged, again.merged) == (0, 0, 3, 1)
    assert list(Customer.select().order_by(Customer.id).dicts()) == before


def test_bad_first_row_of_a_duplicate_group_does_not_lose_the_good_one(app):
    store = make_store(region="MY")
    rows = [
        ["member id", "name", "phone", "birthday"],
        ["M1", "Broken", "0123456789", "1990-13-01"],
        ["M2", "Other", "0129999999", ""],
        ["M1", "Fixed", "0123456789", "1990-12-01"],
    ]
    table = importing.read_table(csv_bytes(rows), "d.csv")
    mapping = importing.suggest_mapping("customers", table.headers)
    report = importing.import_rows("customers", store, table, mapping, NOW, {"batch_size": 2})
    assert [e.line for e in report.errors] == [2]
    assert (report.created, report.rejected, report.merged) == (2, 1, 0)
    assert report.landed == [3, 4]
    assert Customer.get(Customer.external_id == "M1").name == "Fixed"


event_cell = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["0123456789", "12345", "2026-01-05 10:00", "31/02/2026", "purchase"]),
    st.sampled_from(["card_used", "teleport", "RM 1,200.50", "-5", "=1+1", "", "服务"]),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(event_cell, min_size=0, max_size=6), min_size=1, max_size=10))
def test_malformed_event_rows_never_crash_and_each_lands_or_is_reported(app, fired, rows):
    empty_tables(app)
    store = make_store(region="MY")
    make_customer(store, phone="+60123456789")
    headers = ["order no", "phone", "date", "type", "amount", "item"]
    table = importing.read_table(csv_bytes([headers] + rows), "fuzz.csv")
    mapping = importing.suggest_mapping("events", table.headers)
    report = importing.import_rows("events", store, table, mapping, NOW, {"batch_size": 4})
    rejected_lines = {e.line for e in report.errors}
    assert sorted(set(report.landed) | rejected_lines) == sorted(table.lines)
    assert not set(report.landed) & rejected_lines
    assert Event.select().count() == report.created
    assert fired == []


_SCRIPTS = {
    "gb18030": "王小红陈志明林美玲张伟李娜",
    "big5": "陳志明林美玲張偉李娜黃小華",
    "tis-620": "สมชายมาลีใจดีรักดีนภา",
}
_FORMULA = st.sampled_from(["", "=", "+", "-", "@", "=cmd|' /C calc'!A0 "])


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(sorted(_SCRIPTS)).flatmap(
        lambda enc: st.tuples(
            st.just(enc),
            st.lists(
                st.tuples(_FORMULA, st.text(alphabet=_SCRIPTS[enc] + " ", min_size=1, max_size=40)),
                min_size=1,
                max_size=6,
            ),
        )
    )
)
def test_names_in_odd_encodings_round_trip_and_formulas_are_neutralised_on_export(app, case):
    from app.services import exporting

    empty_tables(app)
    encoding, names = case
    store = make_store(region="MY")
    wanted = {}
    rows = [["name", "phone"]]
    for n, (prefix, text) in enumerate(names):
        name = (prefix + text).strip()
        if not name.strip("=+-@ "):
            name = "x" + name
        phone = f"+6012{n:07d}"
        wanted[phone] = name
        rows.append([name, phone])
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    table = importing.read_table(out.getvalue().encode(encoding), "old.csv", encoding=encoding)
    mapping = importing.suggest_mapping("customers", table.headers)
    report = importing.import_rows("customers", store, table, mapping, NOW)
    assert report.rejected == 0 and report.created == len(wanted)
    assert names_by_phone(store) == wanted

    text = "".join(exporting.csv_lines("customers", store, {}, NOW)).lstrip("\ufeff")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert len(exported) == len(wanted)
    for row in exported:
        assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r")) for v in row.values() if v)
        assert _unquoted(row["name"]) == wanted[_unquoted(row["phone"])]


def _unquoted(cell: str) -> str:
    """A cell as the user typed it (the export's leading apostrophe taken off)."""
    return cell[1:] if cell[:1] == "'" else cell
