"""Jinja filters and globals: dates, money and numbers in the viewer's locale."""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import g, request, url_for
from flask_babel import format_date, format_datetime, format_decimal, get_locale
from flask_login import current_user

from app import clock, config
from app.services import notices


def local_dt(value: datetime | None, tz: str | None = None) -> datetime | None:
    """An aware UTC instant in the given (or current store's) timezone."""
    if value is None:
        return None
    store = getattr(g, "store", None)
    zone = ZoneInfo(tz or (store.timezone if store is not None else "UTC"))
    return value.astimezone(zone)


def fmt_datetime(value: datetime | None, fmt: str = "medium", tz: str | None = None) -> str:
    if value is None:
        return ""
    local = local_dt(value, tz)
    return format_datetime(local.replace(tzinfo=None), fmt, rebase=False)


def fmt_date(value: date | datetime | None, fmt: str = "medium", tz: str | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = local_dt(value, tz).date()
    return format_date(value, fmt)


def fmt_money(value, currency: str | None = None) -> str:
    """Money in the viewer's locale, with the symbol the currency has at home (RM, ฿)."""
    from app.services.scripts import format_money

    if value is None:
        return ""
    store = getattr(g, "store", None)
    currency = currency or (store.currency if store is not None else "MYR")
    return format_money(Decimal(str(value)), currency, str(get_locale() or "en"))


def fmt_number(value) -> str:
    if value is None:
        return ""
    return format_decimal(value)


def lang_url(code: str) -> str:
    return url_for("auth.set_language", lang=code, next=request.full_path)


def init_app(app) -> None:
    """Register filters and globals."""
    app.jinja_env.filters.update(
        datetime=fmt_datetime,
        date=fmt_date,
        money=fmt_money,
        number=fmt_number,
        notice=notices.notice_text,
    )
    app.jinja_env.globals.update(
        LANGUAGES=config.LANGUAGES, now=clock.now, get_locale=get_locale, current_user=current_user
    )
