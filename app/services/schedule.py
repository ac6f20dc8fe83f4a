"""Pure date and RRULE maths in a store's timezone: no database, no Flask."""

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# Enough look-ahead for any monthly rule (e.g. day 31 needs at most two months).
_MAX_SCAN = 800


def parse_time(value: str | time) -> time:
    """'10:00' or '9:30' → time; ValueError otherwise."""
    if isinstance(value, time):
        return value
    raw = str(value).strip()
    parts = raw.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise ValueError(f"'{raw[:20]}' is not a time of day (use HH:MM)")
    hour, minute = int(parts[0]), int(parts[1])
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"'{raw[:20]}' is not a time of day (use HH:MM)")
    return time(hour, minute)


def local_date(instant: datetime, tz: str) -> date:
    """The calendar day an aware instant falls on in the store's timezone."""
    return instant.astimezone(ZoneInfo(tz)).date()


def at_local(day: date, at: str | time, tz: str) -> datetime:
    """The UTC instant of `day` at wall-clock `at` in the store's timezone.

    A wall-clock time skipped by a DST change resolves to the same offset as before the change
    (02:30 on a spring-forward night becomes 03:30); a repeated one takes its first occurrence.
    """
    naive = datetime.combine(day, parse_time(at))
    return naive.replace(tzinfo=ZoneInfo(tz), fold=0).astimezone(UTC)


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of a local calendar day (23 or 25 hours across DST)."""
    return at_local(day, "00:00", tz), at_local(day + timedelta(days=1), "00:00", tz)


def daily_rule(interval: int = 1) -> str:
    """Every day, or every `interval` days."""
    return "FREQ=DAILY" if interval == 1 else f"FREQ=DAILY;INTERVAL={int(interval)}"


def weekly_rule(weekdays: list) -> str:
    """Weekly on chosen weekdays (0 = Monday … 6 = Sunday, or 'MO'…'SU')."""
    codes = []
    for day in weekdays:
        code = WEEKDAYS[int(day)] if str(day).isdigit() else str(day).upper()[:2]
        if code not in WEEKDAYS:
            raise ValueError(f"'{day}' is not a weekday")
        if code not in codes:
            codes.append(code)
    if not codes:
        raise ValueError("choose at least one weekday")
    codes.sort(key=WEEKDAYS.index)
    return "FREQ=WEEKLY;BYDAY=" + ",".join(codes)


def monthly_rule(day_of_month: int) -> str:
    """Monthly on day X; in months too short for X it runs on the month's last day.

    RFC 5545 alone would skip such months (BYMONTHDAY=31 never fires in February), so for
    days 29–31 the rule lists the candidate days and keeps the last that exists (BYSETPOS=-1).
    """
    day = int(day_of_month)
    if day == -1:
        return last_day_rule()
    if not 1 <= day <= 31:
        raise ValueError("day of month must be between 1 and 31")
    if day <= 28:
        return f"FREQ=MONTHLY;BYMONTHDAY={day}"
    days = ",".join(str(d) for d in range(28, day + 1))
    return f"FREQ=MONTHLY;BYMONTHDAY={days};BYSETPOS=-1"


def last_day_rule() -> str:
    """Monthly on the last day of the month."""
    return "FREQ=MONTHLY;BYMONTHDAY=-1"


def validate_rule(rule: str) -> None:
    """Raise ValueError unless `rule` is an RRULE python-dateutil understands."""
    if not rule or "FREQ=" not in str(rule).upper():
        raise ValueError("a recurrence rule needs FREQ (e.g. FREQ=DAILY)")
    try:
        rrulestr(_strip(rule), dtstart=datetime(2000, 1, 1))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a valid RRULE: {exc}") from None


def _strip(rule: str) -> str:
    rule = str(rule).strip()
    return rule[len("RRULE:") :] if rule.upper().startswith("RRULE:") else rule


def _days(rule: str, anchor: date, start: date) -> Iterator[date]:
    """Rule dates on or after `start`, counted from `anchor` (which sets INTERVAL phases: an
    every-28-days plan switched on today fires today, in 28 days, … — never from a day that
    merely happens to precede the anchor, which would shift its phase)."""
    dtstart = datetime.combine(anchor, time())
    recurrence = rrulestr(_strip(rule), dtstart=dtstart)
    first = datetime.combine(max(anchor, start), time())
    for occurrence in recurrence.xafter(first, count=_MAX_SCAN, inc=True):
        yield occurrence.date()


def occurrences(
    rule: str,
    at: str,
    tz: str,
    after: datetime,
    until: datetime | None = None,
    anchor: date | None = None,
    offset_days: int = 0,
    limit: int = 500,
) -> Iterator[tuple[date, datetime]]:
    """Firings (rule date, UTC instant) strictly after `after` and up to `until`, in order.

    A firing happens `offset_days` before each rule date (member day on the 18th reminded on
    the 17th) at local time `at`.
    """
    start = local_date(after, tz) - timedelta(days=1)
    anchor = anchor or start
    produced = 0
    for rule_day in _days(rule, anchor, start + timedelta(days=offset_days)):
        instant = at_local(rule_day - timedelta(days=offset_days), at, tz)
        if instant <= after:
            continue
        if until is not None and instant > until:
            return
        yield rule_day, instant
        produced += 1
        if produced >= limit:
            return


def next_run(
    rule: str,
    at: str,
    tz: str,
    after: datetime,
    anchor: date | None = None,
    offset_days: int = 0,
) -> datetime | None:
    """The first firing strictly after `after` (UTC), or None when the rule has ended."""
    for _, instant in occurrences(rule, at, tz, after, anchor=anchor, offset_days=offset_days):
        return instant
    return None


def firing_day(instant: datetime, tz: str) -> date:
    """The local day a firing belongs to."""
    return local_date(instant, tz)


def add_days_local(instant: datetime, days: int, at: str | None, tz: str) -> datetime:
    """`days` local calendar days after `instant`, at local time `at` (or the same wall time)."""
    zone = ZoneInfo(tz)
    local = instant.astimezone(zone)
    day = local.date() + timedelta(days=days)
    if at is None:
        return datetime.combine(day, local.time()).replace(tzinfo=zone, fold=0).astimezone(UTC)
    return at_local(day, at, tz)


def anniversary(birthday_md: int, year: int) -> date:
    """The day a birthday (month*100+day) is celebrated in `year`: 29 Feb → 28 Feb off leap years."""
    month, day = divmod(int(birthday_md), 100)
    try:
        return date(year, month, day)
    except ValueError:
        return date(year, 2, 28)


def birthday_mds_on(day: date) -> list[int]:
    """The birthday_md values celebrated on `day` (28 Feb also takes 29 Feb in common years)."""
    mds = [day.month * 100 + day.day]
    if day.month == 2 and day.day == 28 and not _is_leap(day.year):
        mds.append(229)
    return mds


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def next_working_day(after: date, working_weekdays, holidays=()) -> date:
    """The first day after `after` that is a working weekday (0 = Monday) and not a holiday.

    Holidays are dates or ISO strings; a malformed one is ignored. With no working weekday at
    all, every weekday counts, so the answer is always within a year and a week.
    """
    weekdays = {int(d) for d in working_weekdays} or set(range(7))
    closed = set()
    for h in holidays or ():
        try:
            closed.add(h if isinstance(h, date) else date.fromisoformat(str(h).strip()))
        except ValueError:
            continue
    day = after
    for _ in range(366 + 7):
        day += timedelta(days=1)
        if day.weekday() in weekdays and day not in closed:
            return day
    return after + timedelta(days=1)
