"""Validation errors that name each bad field, and the parsers the domain services share."""

import re
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo


class ValidationError(ValueError):
    """One or more bad fields; `errors` is a list of {"field", "message"}."""

    def __init__(self, errors: list[dict] | str, field: str = ""):
        if isinstance(errors, str):
            errors = [{"field": field, "message": errors}]
        self.errors = list(errors)
        super().__init__("; ".join(_describe(e) for e in self.errors))


def _describe(error: dict) -> str:
    return f"{error['field']}: {error['message']}" if error.get("field") else error["message"]


class Errors:
    """Collects every bad field of one input so they are all reported at once."""

    def __init__(self, prefix: str = ""):
        self.items: list[dict] = []
        self.prefix = prefix

    def add(self, field: str, message: str) -> None:
        """Record one bad field."""
        self.items.append({"field": self.prefix + field, "message": message})

    def check(self, field: str, parse: Callable, *args, **kwargs):
        """Run a parser; on ValueError record its message and answer None."""
        try:
            return parse(*args, **kwargs)
        except ValidationError as exc:
            for err in exc.errors:
                sub = err.get("field") or ""
                if not sub or sub == field:
                    name = field
                elif sub.startswith((field + ".", field + "[")):
                    name = sub
                else:
                    name = f"{field}.{sub}"
                self.items.append({"field": self.prefix + name, "message": err["message"]})
        except (ValueError, TypeError, ArithmeticError) as exc:
            self.add(field, str(exc))
        return None

    def extend(self, errors: list[dict]) -> None:
        """Add errors from another collector or ValidationError."""
        self.items.extend(errors)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        """Raise a ValidationError listing every bad field, if there is one."""
        if self.items:
            raise ValidationError(self.items)


def blank(value) -> bool:
    """True for None and strings that are only whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())


def text(value, limit: int, label: str = "value") -> str:
    """A stripped string of at most `limit` characters."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (dict, list, tuple, set)):
        raise ValueError(f"{label} must be text")
    result = str(value).strip()
    if len(result) > limit:
        raise ValueError(f"{label} is too long ({len(result)} characters, at most {limit})")
    return result


_DATE_PATTERNS = (
    (re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$"), ("y", "m", "d")),
    (re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$"), ("d", "m", "y")),
    (re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"), ("y", "m", "d")),
    (re.compile(r"^(\d{4})(\d{2})(\d{2})$"), ("y", "m", "d")),
)


def parse_date(value) -> date:
    """A date from a date, datetime or text (ISO, D/M/Y, Y/M/D, 年月日; Buddhist years too)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raw = str(value).strip()
    head = raw.split("T")[0].split(" ")[0] if re.match(r"^\d{4}-\d{2}-\d{2}[T ]", raw) else raw
    for pattern, order in _DATE_PATTERNS:
        match = pattern.match(head)
        if match:
            parts = dict(zip(order, (int(g) for g in match.groups()), strict=True))
            year = parts["y"] - 543 if parts["y"] >= 2400 else parts["y"]
            try:
                return date(year, parts["m"], parts["d"])
            except ValueError:
                break
    raise ValueError(f"'{raw[:40]}' is not a valid date (use YYYY-MM-DD)")


def parse_datetime(value, tz: str) -> datetime:
    """An aware UTC datetime from ISO-8601 text or a datetime; no offset means the store's tz."""
    zone = ZoneInfo(tz)
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime.combine(value, time())
    else:
        raw = str(value).strip()
        try:
            result = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            result = None
            for fmt in (
                "%d/%m/%Y %H:%M",
                "%d/%m/%Y %H:%M:%S",
                "%Y/%m/%d %H:%M",
                "%Y/%m/%d %H:%M:%S",
            ):
                try:
                    result = datetime.strptime(raw, fmt)
                    break
                except ValueError:
                    continue
            if result is None:
                try:
                    result = datetime.combine(parse_date(raw), time())
                except ValueError:
                    raise ValueError(
                        f"'{raw[:40]}' is not a valid date and time (use ISO-8601, "
                        "e.g. 2026-11-24T10:30:00+08:00)"
                    ) from None
    if result.tzinfo is None:
        result = result.replace(tzinfo=zone)
    return result.astimezone(ZoneInfo("UTC"))


_MONEY_NOISE = re.compile(r"[\s,_]|RM|NT\$|HK\$|MYR|THB|CNY|TWD|HKD|US\$|[$¥￥฿元圆]")
MAX_MONEY = Decimal("1000000000000")


def parse_decimal(value, allow_negative: bool = False, label: str = "amount") -> Decimal:
    """An exact Decimal with two places from a number or text such as 'RM 1,200.50'."""
    if isinstance(value, bool):
        raise ValueError(f"{label} must be a number")
    if isinstance(value, float):
        value = repr(value)
    raw = _MONEY_NOISE.sub("", str(value).strip())
    try:
        amount = Decimal(raw)
    except (InvalidOperation, ValueError):
        raise ValueError(f"'{str(value)[:40]}' is not a valid {label}") from None
    if not amount.is_finite():
        raise ValueError(f"'{str(value)[:40]}' is not a valid {label}")
    if amount < 0 and not allow_negative:
        raise ValueError(f"{label} cannot be negative")
    if abs(amount) >= MAX_MONEY:
        raise ValueError(f"{label} is too large")
    return amount.quantize(Decimal("0.01"))


def parse_int(value, minimum: int | None = None, label: str = "value") -> int:
    """A whole number (at least `minimum`) from a number or text."""
    if isinstance(value, bool):
        raise ValueError(f"{label} must be a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"'{value}' is not a whole number")
        value = int(value)
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"'{str(value)[:40]}' is not a whole number") from None
    if abs(number) > 2_000_000_000:
        raise ValueError(f"{label} is too large")
    if minimum is not None and number < minimum:
        raise ValueError(f"{label} must be at least {minimum}")
    return number


_TRUE = {"1", "true", "yes", "y", "t", "on", "是", "是的", "有", "ใช่", "ya", "x", "✓", "opt-in"}
_FALSE = {"0", "false", "no", "n", "f", "off", "否", "不", "无", "無", "ไม่", "tidak", "opt-out"}


def parse_bool(value) -> bool:
    """True/False from a bool or yes/no text in English, Chinese, Thai or Malay."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raw = str(value).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"'{str(value)[:40]}' is not yes or no")
