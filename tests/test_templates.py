"""The plan templates as data."""

from app.services import scripts, templates

CONTRACT_KEYS = {
    "member_day",
    "second_visit",
    "post_service",
    "card_use_reminder",
    "card_expiry",
    "count_card_low",
    "balance_low",
    "birthday",
    "service_interval",
    "points_reminder",
}


def test_every_contract_template_exists_with_its_defaults():
    listed = {t["key"]: t for t in templates.template_list()}
    assert set(listed) == CONTRACT_KEYS
    params = {p["name"]: p["default"] for p in listed["member_day"]["params"]}
    assert params["day_of_month"] == 18 and params["remind_days_before"] == 1
    assert params["at"] == "10:00"
    interval = {p["name"]: p["default"] for p in listed["service_interval"]["params"]}
    assert interval == {
        "days_after_last_visit": 173,
        "promo_days_after_last_visit": 195,
        "at": "10:00",
    }
    assert len(listed["service_interval"]["steps"]) == 2
    assert listed["balance_low"]["default_action"]["kind"] == "followup"


def test_every_template_has_a_script_in_each_launch_language_using_only_known_variables():
    for template in templates.TEMPLATES.values():
        all_scripts = [template.scripts, *template.step_scripts]
        for by_locale in all_scripts:
            assert set(by_locale) == set(scripts.LOCALES), template.key
            for text in by_locale.values():
                assert scripts.unknown_variables(text) == [], (template.key, text)
                assert "{first_name}" in text


def test_service_interval_promo_step_comes_22_days_after_the_reminder():
    built = templates.build(
        templates.TEMPLATES["service_interval"],
        templates.defaults(templates.TEMPLATES["service_interval"]),
    )
    assert built["steps"][1]["after_days"] == 195 - 173
    assert built["schedule"]["rrule"] == "FREQ=DAILY"
