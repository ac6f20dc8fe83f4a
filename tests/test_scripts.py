"""Safe placeholder rendering of scripts."""

from datetime import date
from decimal import Decimal

from app.services import scripts


def test_known_variables_are_filled_and_money_uses_store_currency():
    ctx = {"first_name": "Siti", "balance": Decimal("500"), "_currency": "MYR"}
    assert scripts.render("Hi {first_name}, {balance} left", ctx, "en") == "Hi Siti, RM500.00 left"


def test_money_carries_the_symbol_clients_know_in_every_language():
    """CLDR writes "MYR540.00" in English and Chinese; a Kuala Lumpur client reads "RM"."""
    amount = Decimal("1540.5")
    assert scripts.format_money(amount, "MYR", "en") == "RM1,540.50"
    assert scripts.format_money(amount, "MYR", "zh_Hans") == "RM1,540.50"
    assert scripts.format_money(amount, "MYR", "ms") == "RM1,540.50"
    assert scripts.format_money(amount, "THB", "th") == "฿1,540.50"
    assert scripts.format_money(amount, "THB", "en") == "฿1,540.50"
    assert scripts.format_money(Decimal("-20"), "MYR", "en") == "-RM20.00"
    assert scripts.format_money(amount, "EUR", "ms") == "€1,540.50"
    assert scripts.format_money(amount, "XTS", "en") == "XTS1,540.50"  # no symbol known: the code


def test_unknown_placeholder_stays_visible_and_missing_value_renders_empty():
    out = scripts.render("Hi {nmae}{card_name}!", {"name": "A"}, "en")
    assert out == "Hi {nmae}!"
    assert scripts.missing_variables("{card_name} {name}", {"name": "A"}) == ["card_name"]


def test_user_text_is_never_evaluated_as_a_format_string():
    out = scripts.render("{name.__class__} {0} {{name}} %s", {"name": "A"}, "en")
    assert out == "{name.__class__} {0} {name} %s"


def test_dates_are_formatted_in_the_locale():
    ctx = {"expiry_date": date(2021, 6, 30)}
    assert scripts.render("{expiry_date}", ctx, "zh_Hans") == "2021年6月30日"
    assert scripts.render("{expiry_date}", ctx, "en") == "Jun 30, 2021"


def test_first_name_is_first_word_or_the_whole_chinese_name():
    assert scripts.first_name("Siti Aminah") == "Siti"
    assert scripts.first_name("小红") == "小红"
