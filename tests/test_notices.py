"""The system's notices read in the manager's language; a manager's own nudge reads as written."""

import pytest
from flask_babel import force_locale

from app.models import Notice
from app.services import notices
from tests.factories import login, make_staff, make_store

SYSTEM_WORDINGS = [
    notices.not_configured("whatsapp"),
    notices.rejected("sms", "21610: unsubscribed recipient"),
    notices.quota_used_up("whatsapp", 12),
    notices.UNKNOWN_PROVIDER,
    notices.UNKNOWN_STOPPED,
]


@pytest.mark.parametrize("locale", ["zh_Hans", "zh_Hant", "th", "ms"])
def test_every_wording_the_system_writes_reads_in_each_language(app, locale):
    with app.test_request_context(), force_locale(locale):
        for text in SYSTEM_WORDINGS:
            shown = notices.notice_text(text)
            assert shown != text and "may or may not" not in shown and "quota" not in shown


def test_what_varies_is_kept_in_the_translation(app):
    with app.test_request_context(), force_locale("th"):
        assert "21610: unsubscribed recipient" in notices.notice_text(SYSTEM_WORDINGS[1])
        assert "12" in notices.notice_text(SYSTEM_WORDINGS[2])
        assert "whatsapp" in notices.notice_text(SYSTEM_WORDINGS[0])


def test_banner_shows_the_warning_in_thai_and_a_nudge_as_written(app, client):
    store = make_store("bkk", timezone="Asia/Bangkok", locale="th")
    manager = make_staff("manager", [store], name="Somchai", locale="th")
    Notice.create(staff=manager, store=store, text=notices.not_configured("line"), url="/messages")
    Notice.create(staff=manager, store=store, text="Please call Mrs Lim back today")
    login(client, manager)
    html = client.get("/dashboard").get_data(as_text=True)
    assert "ส่งข้อความไม่ได้: ร้านนี้ยังไม่ได้ตั้งค่าช่องทาง line" in html
    assert "is not configured" not in html
    assert "Please call Mrs Lim back today" in html
