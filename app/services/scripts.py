"""Safe {placeholder} rendering of scripts and messages (never Jinja or str.format on user text).

The rule: `{name}` for a known variable is replaced by its value formatted in the locale (money
with the store's currency, dates in the locale's medium form); a known variable without a value
renders as nothing; an unknown name stays visible as typed (`{nmae}`) so its author sees the typo.
`{{` and `}}` stand for literal braces.
"""

import re
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, get_currency_symbol
from babel.support import NullTranslations, Translations

VARIABLES = [
    "name",
    "first_name",
    "card_name",
    "balance",
    "remaining_uses",
    "expiry_date",
    "store_name",
    "member_day",
    "points",
    "last_visit_date",
    "days_since_visit",
    "visit_count",
    "staff_name",
    "source",
    "next_reward",
    "points_to_next_reward",
    "rewards_within_reach",
    "redeemed_so_far",
    "points_link",
]
# Variables only the loyalty programme can fill (services.loyalty.script_fields).
LOYALTY_VARIABLES = frozenset(
    {
        "next_reward",
        "points_to_next_reward",
        "rewards_within_reach",
        "redeemed_so_far",
        "points_link",
    }
)
_KNOWN = frozenset(VARIABLES)
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
LOCALES = ("en", "zh_Hans", "zh_Hant", "th", "ms")
_BABEL_LOCALES = {"zh_Hans": "zh_Hans_CN", "zh_Hant": "zh_Hant_TW", "zh": "zh_Hans_CN"}


def babel_locale(locale: str | None) -> str:
    """The Babel locale for one of ours (zh_Hans → zh_Hans_CN); unknown ones fall back to en."""
    raw = (locale or "en").replace("-", "_")
    return _BABEL_LOCALES.get(raw, raw)


def N_(text: str) -> str:
    """Mark message text for the catalogue; `translate` fills it in a recipient's language."""
    return text


@lru_cache(maxsize=16)
def _catalogue(locale: str):
    if locale.split("_")[0] == "en":
        return NullTranslations()
    folder = Path(__file__).resolve().parent.parent / "translations"
    return Translations.load(str(folder), [locale])


def translate(locale: str | None, text: str, **values) -> str:
    """`text` (marked with N_) in a recipient's language, without needing a request: the
    worker renders messages for customers who each have their own language."""
    out = _catalogue((locale or "en").replace("-", "_")).gettext(text)
    return out % values if values else out


@lru_cache(maxsize=4096)
def compile_script(script: str) -> tuple:
    """Split a script into literal text and variable names, once per distinct script."""
    parts: list = []
    pos = 0
    for match in _TOKEN.finditer(script or ""):
        if match.start() > pos:
            parts.append(script[pos : match.start()])
        token = match.group(0)
        if token == "{{":
            parts.append("{")
        elif token == "}}":
            parts.append("}")
        elif match.group(1) in _KNOWN:
            parts.append((match.group(1),))
        else:
            parts.append(token)
        pos = match.end()
    if pos < len(script or ""):
        parts.append(script[pos:])
    return tuple(parts)


@lru_cache(maxsize=64)
def home_symbol(currency: str) -> str:
    """The symbol a currency has where it is spent (MYR → RM, THB → ฿), from CLDR; the code
    itself when CLDR knows none."""
    from babel.core import Locale, get_global

    for territory, currencies in get_global("territory_currencies").items():
        if any(c[0] == currency and c[2] is None and c[3] for c in currencies):
            try:
                symbol = get_currency_symbol(currency, Locale.parse(f"und_{territory}"))
            except (ValueError, LookupError):
                continue
            if symbol != currency:
                return symbol
    return currency


@lru_cache(maxsize=65536)
def format_money(amount: Decimal, currency: str, locale: str | None) -> str:
    """Money in a locale's number format with the currency's usual symbol: "RM540.00" for a
    Kuala Lumpur salon in English or Chinese, where CLDR alone would write "MYR540.00"."""
    text = format_currency(amount, currency, locale=babel_locale(locale))
    if currency and currency in text:
        text = text.replace(currency, home_symbol(currency))
    return text


_money = format_money


@lru_cache(maxsize=65536)
def _day(day: date, locale: str) -> str:
    return format_date(day, format="medium", locale=babel_locale(locale))


def format_value(value, locale: str, currency: str = "") -> str:
    """One variable's value as text in the locale."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return (
            _money(value, currency, locale)
            if currency
            else format_decimal(value, locale=babel_locale(locale))
        )
    if isinstance(value, datetime):
        return _day(value.date(), locale)
    if isinstance(value, date):
        return _day(value, locale)
    return str(value)


def render_compiled(parts: tuple, context: dict, locale: str) -> str:
    """Render pre-compiled parts; the fast path for large occurrences."""
    currency = context.get("_currency", "")
    out = []
    for part in parts:
        if isinstance(part, tuple):
            out.append(format_value(context.get(part[0]), locale, currency))
        else:
            out.append(part)
    return "".join(out)


def render(script: str, context: dict, locale: str) -> str:
    """Fill a script's {variables} from `context`, formatted in `locale` (see the module rule)."""
    return render_compiled(compile_script(script or ""), context, locale)


def missing_variables(script: str, context: dict) -> list[str]:
    """Known variables the script uses that have no value in `context`."""
    missing = []
    for part in compile_script(script or ""):
        if (
            isinstance(part, tuple)
            and context.get(part[0]) in (None, "")
            and part[0] not in missing
        ):
            missing.append(part[0])
    return missing


def unknown_variables(script: str) -> list[str]:
    """Names in {braces} that are not variables (shown to the author as likely typos)."""
    return [
        m.group(1) for m in _TOKEN.finditer(script or "") if m.group(1) and m.group(1) not in _KNOWN
    ]


def first_name(name: str | None) -> str:
    """The given name: the first word of a spaced name; whole names without spaces (小红) as is."""
    name = (name or "").strip()
    return name.split()[0] if " " in name else name


def context_for(customer, store, plan=None, card=None, event=None, staff=None, now=None) -> dict:
    """The variables for one customer (and optionally a card, event and staff member)."""
    tz = ZoneInfo(store.timezone)
    last_visit = customer.last_visit_at
    context = {
        "_currency": store.currency,
        "name": customer.name,
        "first_name": first_name(customer.name),
        "store_name": store.name,
        "points": customer.points,
        "source": customer.source or "",
        "visit_count": customer.visit_count,
        "last_visit_date": last_visit.astimezone(tz).date() if last_visit else None,
        "days_since_visit": (
            (now.astimezone(tz).date() - last_visit.astimezone(tz).date()).days
            if last_visit and now
            else None
        ),
        "staff_name": staff.name if staff is not None else None,
    }
    if store.member_day:
        context["member_day"] = store.member_day
    if plan is not None and (plan.params or {}).get("day_of_month") and now is not None:
        context["member_day"] = _next_member_day(
            int(plan.params["day_of_month"]), now.astimezone(tz).date()
        )
    from app import clock
    from app.services import loyalty  # loyalty renders its phrases with translate() above

    locale = customer.locale or store.locale
    context.update(
        loyalty.script_fields(store, [(customer.id, customer.points, locale)], now or clock.now())[
            customer.id
        ]
    )
    if card is not None:
        context.update(
            card_name=card.product.name,
            balance=card.balance,
            remaining_uses=card.remaining_uses,
            expiry_date=card.expires_on,
        )
    return context


def _next_member_day(day_of_month: int, today: date) -> date:
    from app.services import schedule

    rule = schedule.monthly_rule(day_of_month)
    for rule_day in schedule._days(rule, today, today):
        return rule_day
    return today
