"""Pure schedule maths: RRULEs in a store's timezone."""

from datetime import date

import pytest

from app.services import schedule
from tests.factories import utc


def firings(rule, at, tz, after, count, **kw):
    found = schedule.occurrences(rule, at, tz, after, **kw)
    return [instant for _, (_day, instant) in zip(range(count), found, strict=False)]


def test_member_day_on_18th_is_reminded_on_17th_at_ten_store_time():
    rule = schedule.monthly_rule(18)
    first = schedule.next_run(rule, "10:00", "Asia/Shanghai", utc(2022, 5, 1), offset_days=1)
    assert first == utc(2022, 5, 17, 2, 0)  # 10:00 in Shanghai


def test_monthly_day_31_runs_on_last_day_of_shorter_months():
    rule = schedule.monthly_rule(31)
    days = [i.date() for i in firings(rule, "10:00", "UTC", utc(2027, 1, 1), 4)]
    assert days == [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30)]


def test_monthly_day_30_runs_on_29_february_in_leap_year():
    days = [
        i.date() for i in firings(schedule.monthly_rule(30), "09:00", "UTC", utc(2028, 2, 1), 2)
    ]
    assert days == [date(2028, 2, 29), date(2028, 3, 30)]


def test_last_day_rule_hits_28_february():
    days = [
        i.date() for i in firings(schedule.last_day_rule(), "10:00", "UTC", utc(2027, 1, 31, 12), 2)
    ]
    assert days == [date(2027, 2, 28), date(2027, 3, 31)]


def test_ten_oclock_plan_stays_at_ten_local_across_new_york_dst_change():
    rule = schedule.daily_rule()
    got = firings(rule, "10:00", "America/New_York", utc(2026, 3, 7, 0), 3)
    # 7 March EST (UTC-5) → 15:00 UTC; 8 March is the spring-forward day, EDT (UTC-4) → 14:00 UTC
    assert got == [utc(2026, 3, 7, 15), utc(2026, 3, 8, 14), utc(2026, 3, 9, 14)]
    back = firings(rule, "10:00", "America/New_York", utc(2026, 10, 31, 0), 3)
    assert back == [utc(2026, 10, 31, 14), utc(2026, 11, 1, 15), utc(2026, 11, 2, 15)]


def test_weekly_rule_on_chosen_weekdays():
    rule = schedule.weekly_rule([0, 3])  # Monday, Thursday
    days = [i.date() for i in firings(rule, "10:00", "Asia/Kuala_Lumpur", utc(2026, 11, 24), 3)]
    assert days == [date(2026, 11, 26), date(2026, 11, 30), date(2026, 12, 3)]


def test_interval_rule_keeps_its_phase_from_the_anchor():
    rule = schedule.daily_rule(28)
    first = schedule.next_run(rule, "10:00", "UTC", utc(2026, 2, 1), anchor=date(2026, 1, 1))
    assert first == utc(2026, 2, 26, 10)  # 1 Jan + 56 days


def test_interval_plan_switched_on_this_morning_starts_today_and_keeps_its_phase():
    """Every 28 days at 10:00, switched on at 05:16 in Kuala Lumpur on 2 December: 2 December,
    30 December, 27 January; never a day early, never two days running."""
    rule, tz, anchor = schedule.daily_rule(28), "Asia/Kuala_Lumpur", date(2026, 12, 2)
    switched_on = utc(2026, 12, 1, 21, 16)
    first = schedule.next_run(rule, "10:00", tz, switched_on, anchor=anchor)
    assert first == utc(2026, 12, 2, 2)
    second = schedule.next_run(rule, "10:00", tz, first, anchor=anchor)
    assert second == utc(2026, 12, 30, 2)
    assert schedule.next_run(rule, "10:00", tz, second, anchor=anchor) == utc(2027, 1, 27, 2)
    assert firings(rule, "10:00", tz, switched_on, 3, anchor=anchor) == [
        first,
        second,
        utc(2027, 1, 27, 2),
    ]


def test_interval_plan_switched_on_after_its_hour_starts_one_interval_later():
    rule, tz, anchor = schedule.daily_rule(28), "Asia/Kuala_Lumpur", date(2026, 12, 2)
    evening = utc(2026, 12, 2, 12)  # 20:00 local, after 10:00
    assert schedule.next_run(rule, "10:00", tz, evening, anchor=anchor) == utc(2026, 12, 30, 2)


def test_next_run_is_strictly_after_the_given_instant():
    rule = schedule.daily_rule()
    assert schedule.next_run(rule, "10:00", "UTC", utc(2026, 5, 1, 10)) == utc(2026, 5, 2, 10)


def test_29_february_birthday_is_celebrated_on_28_february_in_2027():
    assert schedule.anniversary(229, 2027) == date(2027, 2, 28)
    assert schedule.anniversary(229, 2028) == date(2028, 2, 29)
    assert schedule.birthday_mds_on(date(2027, 2, 28)) == [228, 229]
    assert schedule.birthday_mds_on(date(2028, 2, 28)) == [228]


def test_bad_rules_and_times_are_rejected():
    with pytest.raises(ValueError):
        schedule.validate_rule("EVERY MONDAY")
    with pytest.raises(ValueError):
        schedule.parse_time("25:00")
    with pytest.raises(ValueError):
        schedule.monthly_rule(32)


def test_spring_forward_gap_time_resolves_to_the_later_wall_time():
    assert schedule.at_local(date(2026, 3, 8), "02:30", "America/New_York") == utc(
        2026, 3, 8, 7, 30
    )


def test_next_working_day_skips_closed_weekdays_and_holidays():
    friday = date(2026, 11, 27)
    mon_to_fri = [0, 1, 2, 3, 4]
    assert schedule.next_working_day(friday, mon_to_fri) == date(2026, 11, 30)
    assert schedule.next_working_day(friday, mon_to_fri, ["2026-11-30"]) == date(2026, 12, 1)
    holidays = [date(2026, 11, 30), "2026-12-01", "not a date"]
    assert schedule.next_working_day(friday, mon_to_fri, holidays) == date(2026, 12, 2)


def test_next_working_day_with_no_working_weekday_takes_any_day_but_holidays():
    assert schedule.next_working_day(date(2026, 12, 31), [], ["2027-01-01"]) == date(2027, 1, 2)
