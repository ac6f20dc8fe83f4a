"""Creating and configuring stores."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from babel import Locale, UnknownLocaleError
from babel.numbers import get_currency_name

from app.models import Store

DEFAULT_SETTINGS = {
    "grace_hours": 24,
    "fatigue_messages": 2,
    "fatigue_followups": 1,
    "fatigue_days": 7,
    "no_answer_attempts": 3,
    "working_days": [0, 1, 2, 3, 4, 5],
    "followup_hour": "09:00",
}


def create_store(
    key: str, name: str, timezone: str, region: str, currency: str, locale: str = "en"
) -> Store:
    """Validate and add a store; ValueError names the bad field."""
    key = (key or "").strip()
    if not key or len(key) > 64 or not all(ch.isalnum() or ch in "-_" for ch in key):
        raise ValueError("Store key must be letters, digits, '-' or '_' (at most 64).")
    if Store.get_or_none(Store.key == key):
        raise ValueError(f"A store with key {key!r} already exists.")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"Unknown timezone {timezone!r} (use an IANA name such as Asia/Kuala_Lumpur)."
        ) from exc
    region = region.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"Unknown phone region {region!r} (use a two-letter code such as MY or TH)."
        )
    currency = currency.upper()
    if len(currency) != 3 or get_currency_name(currency, locale="en") == currency:
        raise ValueError(f"Unknown currency {currency!r} (use an ISO 4217 code such as MYR).")
    try:
        Locale.parse(locale)
    except (UnknownLocaleError, ValueError) as exc:
        raise ValueError(f"Unknown locale {locale!r}.") from exc
    return Store.create(
        key=key,
        name=name.strip(),
        timezone=timezone,
        region=region,
        currency=currency,
        locale=locale,
        settings=dict(DEFAULT_SETTINGS),
    )
