"""Message templates per plan: languages, preview, WhatsApp approval status and sending."""

import json
from urllib.parse import parse_qs, urlparse

import pytest

from app.models import AuditLog, Consent, MessageTemplate, MessageTemplateVariant, Plan
from app.services import message_templates as service
from app.services import messaging, plans, scheduler
from app.services.validation import ValidationError
from tests.factories import login, make_customer, make_staff, make_store, utc
from tests.stubs import StubServer

# Services read SECRET_KEY from the running app, as in a request or a CLI command.
pytestmark = pytest.mark.usefixtures("in_app_context")

HX = {"HX-Request": "true"}
NOW = utc(2026, 12, 1, 4, 0)
EVE_10AM = utc(2026, 12, 17, 2, 0)  # 17 December, 10:00 in Kuala Lumpur
WABA = "102290129340398"

MEMBER_DAY = {
    "en": {"body": "Hi {first_name}, member day at {store_name} is on {member_day}!"},
    "zh_Hans": {"body": "{first_name}您好,{member_day}是{store_name}的会员日!"},
    "ms": {"body": "Hai {first_name}, Hari Ahli di {store_name} pada {member_day}!"},
}


class GraphTemplates(StubServer):
    """GET /v{version}/{WABA-ID}/message_templates?name=… as the Graph API documents it,
    with `paging.next` when more than `page_size` templates match."""

    def __init__(self, token="wa-token", page_size=25):
        self.token = token
        self.page_size = page_size
        self.templates: list[dict] = []
        super().__init__()

    def answer(self, request, mode):
        if request["headers"].get("authorization") != f"Bearer {self.token}":
            return 401, {}, {"error": {"message": "Invalid OAuth access token.", "code": 190}}
        url = urlparse(request["path"])
        if request["method"] != "GET" or not url.path.endswith(f"/{WABA}/message_templates"):
            return 404, {}, {"error": {"message": "Unknown path", "code": 100}}
        if mode == "500":
            return 500, {}, {"error": {"message": "An unknown error occurred", "code": 1}}
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        rows = [t for t in self.templates if t["name"] == query.get("name", t["name"])]
        start = int(query.get("after", 0))
        page = rows[start : start + self.page_size]
        body = {
            "data": [
                {**t, "id": f"{1000 + i}", "category": "MARKETING"}
                for i, t in enumerate(page, start)
            ],
            "paging": {"cursors": {"before": str(start), "after": str(start + len(page))}},
        }
        if start + len(page) < len(rows):
            body["paging"]["next"] = (
                f"{self.base_url}{url.path}?name={query.get('name', '')}"
                f"&limit={self.page_size}&after={start + len(page)}"
            )
        return 200, {}, body


@pytest.fixture
def graph():
    stub = GraphTemplates()
    yield stub
    stub.close()


def whatsapp_store(graph=None, wa=None, **kw):
    store = make_store("kl", name="Bunga Beauty KL", timezone="Asia/Kuala_Lumpur", **kw)
    base = (wa or graph).base_url
    messaging.configure_channel(
        store,
        "whatsapp",
        NOW,
        enabled=True,
        config={
            "base_url": base,
            "api_version": "21.0",
            "phone_number_id": "106540352242922",
            "waba_id": WABA,
            "timeout": 0.5,
        },
        secrets={"access_token": "wa-token", "app_secret": "wa-app-secret"},
    )
    return store


def member_day_template(store, **kw):
    data = {
        "name": "Member day",
        "channel": "whatsapp",
        "wa_name": "member_day_reminder",
        "variants": MEMBER_DAY,
    }
    data.update(kw)
    return service.save_template(store, data, NOW)


def approve_all(template):
    MessageTemplateVariant.update(wa_status="approved").where(
        MessageTemplateVariant.template == template.id
    ).execute()


def member_day_plan(store, template, **kw):
    body = {
        "template": "member_day",
        "name": "Member day push",
        "params": {"day_of_month": 18, "remind_days_before": 1, "at": "10:00"},
        "action": {"kind": "message", "channel": "whatsapp", "message_template": template.id},
    }
    body.update(kw)
    return plans.create_plan(store, body, NOW)


# ---------------------------------------------------------------- the service


def test_whatsapp_template_starts_pending_in_each_language_with_metas_codes(app):
    store = make_store()
    template = member_day_template(store)
    variants = service.variants_of(template)
    assert list(variants) == ["en", "zh_Hans", "ms"]
    assert {loc: v.wa_language for loc, v in variants.items()} == {
        "en": "en",
        "zh_Hans": "zh_CN",
        "ms": "ms",
    }
    assert {v.wa_status for v in variants.values()} == {"pending"}
    assert service.approval(template) == "pending"
    assert service.meta_body(variants["en"].body) == ("Hi {{1}}, member day at {{2}} is on {{3}}!")


def test_template_validation_names_every_bad_field(app):
    store = make_store()
    with pytest.raises(ValidationError) as exc:
        service.save_template(
            store,
            {
                "name": "",
                "channel": "whatsapp",
                "wa_name": "Member Day!",
                "variants": {"en": {"body": "Hi {nmae}", "wa_language": "english please"}},
            },
            NOW,
        )
    fields = {e["field"] for e in exc.value.errors}
    assert fields == {"name", "wa_name", "variants.en.body", "variants.en.wa_language"}
    with pytest.raises(ValidationError) as exc:
        service.save_template(store, {"name": "Empty", "channel": "sms", "variants": {}}, NOW)
    assert [e["field"] for e in exc.value.errors] == ["variants"]


def test_editing_an_approved_body_needs_approval_again_and_plans_get_a_new_version(app):
    store = make_store()
    template = member_day_template(store)
    approve_all(template)
    plan = member_day_plan(store, template)
    assert plan.action["script"]["en"] == MEMBER_DAY["en"]["body"]
    assert plan.action["template_name"] == "member_day_reminder"
    assert plan.action["template_languages"] == {"en": "en", "zh_Hans": "zh_CN", "ms": "ms"}
    changed = {**MEMBER_DAY, "en": {"body": "Hello {first_name}: member day {member_day}!"}}
    service.save_template(store, {**_data(template), "variants": changed}, NOW, template=template)
    statuses = {loc: v.wa_status for loc, v in service.variants_of(template).items()}
    assert statuses == {"en": "pending", "zh_Hans": "approved", "ms": "approved"}
    plan = Plan.get_by_id(plan.id)
    assert plan.version == 2
    assert plan.action["script"]["en"] == "Hello {first_name}: member day {member_day}!"


def test_a_whatsapp_template_that_active_plans_send_cannot_be_reworded(app):
    store = make_store()
    template = member_day_template(store)
    approve_all(template)
    plan = member_day_plan(store, template, status="active")
    changed = {**MEMBER_DAY, "en": {"body": "Hello {first_name}!"}}
    with pytest.raises(ValidationError) as exc:
        service.save_template(
            store, {**_data(template), "variants": changed}, NOW, template=template
        )
    assert exc.value.errors[0]["field"] == "variants"
    assert service.approval(template) == "approved"
    renamed = service.save_template(
        store, {**_data(template), "name": "Member day (KL)", "variants": MEMBER_DAY}, NOW,
        template=template,
    )  # fmt: skip
    assert renamed.name == "Member day (KL)" and service.approval(renamed) == "approved"
    plans.set_status(plan, "paused", NOW)
    service.save_template(store, {**_data(template), "variants": changed}, NOW, template=template)
    assert service.approval(template) == "pending"


def _data(template):
    return {
        "name": template.name,
        "channel": template.channel,
        "wa_name": template.wa_name,
    }


def test_plan_with_unapproved_whatsapp_template_cannot_be_switched_on(app):
    store = make_store()
    template = member_day_template(store)
    plan = member_day_plan(store, template)
    with pytest.raises(ValidationError) as exc:
        plans.set_status(plan, "active", NOW)
    [error] = exc.value.errors
    assert error["field"] == "action.message_template"
    assert "member_day_reminder" in error["message"] and "pending" in error["message"]
    assert Plan.get_by_id(plan.id).status == "draft"
    MessageTemplateVariant.update(wa_status="rejected", wa_reason="INVALID_FORMAT").where(
        MessageTemplateVariant.locale == "ms"
    ).execute()
    MessageTemplateVariant.update(wa_status="approved").where(
        MessageTemplateVariant.locale != "ms"
    ).execute()
    with pytest.raises(ValidationError) as exc:
        plans.set_status(plan, "active", NOW)
    assert "ms: rejected (INVALID_FORMAT)" in exc.value.errors[0]["message"]
    approve_all(template)
    assert plans.set_status(plan, "active", NOW).status == "active"


def test_creating_an_active_plan_with_an_unapproved_template_creates_nothing(app):
    store = make_store()
    template = member_day_template(store)
    with pytest.raises(ValidationError):
        member_day_plan(store, template, status="active")
    assert Plan.select().count() == 0


def test_a_non_whatsapp_channel_does_not_need_meta_approval(app):
    store = make_store()
    template = member_day_template(store)
    plan = member_day_plan(
        store,
        template,
        action={"kind": "message", "channel": "sms", "message_template": template.id},
    )
    assert plans.set_status(plan, "active", NOW).status == "active"


def test_another_stores_template_cannot_be_used(app):
    mine, theirs = make_store(), make_store()
    template = member_day_template(theirs)
    with pytest.raises(ValidationError) as exc:
        member_day_plan(mine, template)
    assert exc.value.errors[0]["field"] == "action.message_template"


def test_refresh_reads_status_per_language_from_the_graph_api_across_pages(app, graph):
    store = whatsapp_store(graph)
    template = member_day_template(store)
    graph.page_size = 1
    graph.templates = [
        {"name": "member_day_reminder", "language": "en", "status": "APPROVED"},
        {"name": "member_day_reminder", "language": "zh_CN", "status": "PENDING"},
        {
            "name": "member_day_reminder",
            "language": "ms",
            "status": "REJECTED",
            "rejected_reason": "INVALID_FORMAT",
        },
        {"name": "other_template", "language": "en", "status": "REJECTED"},
    ]
    changes = service.refresh_status(template, NOW)
    variants = service.variants_of(template)
    assert {loc: (v.wa_status, v.wa_reason) for loc, v in variants.items()} == {
        "en": ("approved", ""),
        "zh_Hans": ("pending", ""),
        "ms": ("rejected", "INVALID_FORMAT"),
    }
    assert set(changes) == {"en", "ms"}
    assert service.approval(template) == "rejected"
    first = urlparse(graph.requests[0]["path"])
    assert first.path == f"/v21.0/{WABA}/message_templates"
    assert parse_qs(first.query)["name"] == ["member_day_reminder"]
    assert len(graph.requests) == 3  # one page per matching template
    audit = AuditLog.get(AuditLog.action == "message_template.status")
    assert audit.object_id == str(template.id)


def test_refresh_without_waba_id_or_on_a_graph_error_says_why(app, graph):
    store = make_store()
    template = member_day_template(store)
    with pytest.raises(ValidationError) as exc:
        service.refresh_status(template, NOW)
    assert "Business Account ID" in exc.value.errors[0]["message"]
    store2 = whatsapp_store(graph)
    template2 = member_day_template(store2)
    graph.script("500")
    with pytest.raises(ValidationError) as exc:
        service.refresh_status(template2, NOW)
    assert "500" in exc.value.errors[0]["message"]
    assert service.approval(template2) == "pending"


def test_status_webhook_updates_the_matching_language(app):
    store = make_store()
    template = member_day_template(store)
    other = make_store()
    member_day_template(other)  # the same Meta name in another store stays untouched
    value = {
        "event": "APPROVED",
        "message_template_id": 1000,
        "message_template_name": "member_day_reminder",
        "message_template_language": "zh_CN",
        "reason": "NONE",
    }
    assert service.handle_status_webhook(store, value, NOW) == 1
    assert service.variants_of(template)["zh_Hans"].wa_status == "approved"
    assert service.handle_status_webhook(store, value, NOW) == 0
    rejected = {**value, "event": "REJECTED", "reason": "INCORRECT_CATEGORY"}
    rejected["message_template_language"] = "en"
    service.handle_status_webhook(store, rejected, NOW)
    en = service.variants_of(template)["en"]
    assert (en.wa_status, en.wa_reason) == ("rejected", "INCORRECT_CATEGORY")
    others = MessageTemplateVariant.select().join(MessageTemplate)
    assert {v.wa_status for v in others.where(MessageTemplate.store == other.id)} == {"pending"}


def test_body_parameters_come_back_out_of_the_rendered_text():
    script = "Hi {first_name}, {{VIP}} day at {store_name}: {member_day}."
    body = "Hi Siti, {VIP} day at Bunga, KL: 18 Dec 2026."
    assert service.body_parameters(script, body) == ["Siti", "Bunga, KL", "18 Dec 2026"]
    assert service.body_parameters(script, "something else") is None


# ---------------------------------------------------------------- sending


def test_member_day_sends_each_customer_the_approved_template_in_their_language(app, wa):
    store = whatsapp_store(wa=wa, member_day=18)
    template = member_day_template(store)
    approve_all(template)
    people = {
        "en": make_customer(store, name="Priya Nair", phone="+60123456781", locale="en"),
        "zh_Hans": make_customer(store, name="小红", phone="+60123456782", locale="zh_Hans"),
        "th": make_customer(store, name="Somsri", phone="+60123456783", locale="th"),
    }
    for customer in people.values():
        Consent.create(customer=customer, channel="whatsapp", granted=True, source="test")
    plan = member_day_plan(store, template, status="active")
    assert plan.status == "active"

    summary = scheduler.tick(EVE_10AM)

    assert summary.sent == 3
    sent = {b["to"]: b["template"] for b in wa.sent()}
    assert {t["name"] for t in sent.values()} == {"member_day_reminder"}
    assert sent["60123456781"]["language"] == {"code": "en"}
    assert sent["60123456782"]["language"] == {"code": "zh_CN"}
    # No Thai variant: the store's language (English) is used.
    assert sent["60123456783"]["language"] == {"code": "en"}
    params = {to: [p["text"] for p in t["components"][0]["parameters"]] for to, t in sent.items()}
    assert params["60123456781"][:2] == ["Priya", "Bunga Beauty KL"]
    assert params["60123456782"] == ["小红", "2026年12月18日", "Bunga Beauty KL"]
    assert "18" in params["60123456781"][2]


# ---------------------------------------------------------------- the manager's pages


@pytest.fixture
def salon(app):
    store = make_store("kl", name="Bunga Beauty KL")
    farah = make_staff("manager", [store], name="Farah")
    aisyah = make_staff("employee", [store], name="Aisyah")
    return store, farah, aisyah


def _form(**extra):
    data = {
        "name": "Member day",
        "channel": "whatsapp",
        "wa_name": "member_day_reminder",
        "body.en": MEMBER_DAY["en"]["body"],
        "body.zh_Hans": MEMBER_DAY["zh_Hans"]["body"],
        "wa_language.zh_Hans": "",
    }
    data.update(extra)
    return data


def test_manager_creates_and_edits_a_template_in_the_console(client, salon):
    store, farah, _ = salon
    login(client, farah)
    page = client.get("/message-templates/new").get_data(as_text=True)
    assert "<html" in page and 'name="body.th"' in page
    resp = client.post("/message-templates/new", data=_form())
    assert resp.status_code == 303
    template = MessageTemplate.get(MessageTemplate.store == store.id)
    assert service.variants_of(template)["zh_Hans"].wa_language == "zh_CN"
    page = client.get(f"/message-templates/{template.id}").get_data(as_text=True)
    assert "Hi {{1}}, member day at {{2}} is on {{3}}!" in page
    assert 'data-approval="pending"' in page
    listing = client.get("/message-templates", headers=HX).get_data(as_text=True)
    assert "<html" not in listing and "Member day" in listing
    bad = client.post(
        f"/message-templates/{template.id}", data=_form(wa_name="Bad Name"), headers=HX
    )
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "<html" not in html and 'data-error-for="wa_name"' in html
    audit = [a.action for a in AuditLog.select().where(AuditLog.object_type == "message_template")]
    assert audit == ["message_template.created"]


def test_preview_renders_every_language_for_a_real_customer(client, salon):
    store, farah, _ = salon
    template = member_day_template(store)
    make_customer(store, name="小红", locale="zh_Hans", phone="+60123000001")
    login(client, farah)
    html = client.post(
        f"/message-templates/{template.id}/preview", data={"q": "小红"}, headers=HX
    ).get_data(as_text=True)
    assert "<html" not in html
    assert "小红您好" in html and "Hi 小红, member day at Bunga Beauty KL" in html
    assert 'mt-chosen" data-locale="zh_Hans"' in html


def test_refresh_button_shows_the_new_status(client, graph):
    store = whatsapp_store(graph)
    farah = make_staff("manager", [store])
    template = member_day_template(store)
    graph.templates = [
        {"name": "member_day_reminder", "language": lang, "status": "APPROVED"}
        for lang in ("en", "zh_CN", "ms")
    ]
    login(client, farah)
    html = client.post(f"/message-templates/{template.id}/refresh", headers=HX).get_data(
        as_text=True
    )
    assert "<html" not in html and 'data-approval="approved"' in html, html


def test_switching_on_in_the_console_shows_why_it_is_refused(client, salon):
    store, farah, _ = salon
    template = member_day_template(store)
    plan = member_day_plan(store, template)
    login(client, farah)
    page = client.get(f"/plans/{plan.id}/activate").get_data(as_text=True)
    assert "activation-blocked" in page and "member_day_reminder" in page
    resp = client.post(f"/plans/{plan.id}/status", data={"status": "active", "backfill": "1"})
    assert resp.status_code == 422
    assert "which Meta has not approved yet" in resp.get_data(as_text=True)
    assert Plan.get_by_id(plan.id).status == "draft"


def test_api_refuses_to_switch_on_a_plan_with_an_unapproved_template(client, salon):
    store, _, _ = salon
    from app.services import tokens

    raw = tokens.create_token(store, "test")[1]
    template = member_day_template(store)
    plan = member_day_plan(store, template)
    resp = client.patch(
        f"/api/v1/plans/{plan.id}",
        json={"status": "active"},
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    problem = json.loads(resp.data)
    assert problem["errors"][0]["field"] == "action.message_template"
    assert Plan.get_by_id(plan.id).status == "draft"


def test_plan_form_offers_the_stores_templates(client, salon):
    store, farah, _ = salon
    template = member_day_template(store)
    member_day_template(make_store(), name="Someone else's")
    login(client, farah)
    page = client.get("/plans/new?template=member_day").get_data(as_text=True)
    assert f'<option value="{template.id}"' in page and "Someone else" not in page
    form = {
        "template": "member_day",
        "name": "Member day push",
        "params.day_of_month": "18",
        "params.remind_days_before": "1",
        "params.at": "10:00",
        "action_kind": "message",
        "channel": "whatsapp",
        "message_template": str(template.id),
        "script": "",
        "a.r.mode": "all",
    }
    assert client.post("/plans/new?template=member_day", data=form).status_code == 303
    plan = Plan.get(Plan.store == store.id)
    assert plan.action["message_template"] == template.id
    assert plan.action["script"]["zh_Hans"] == MEMBER_DAY["zh_Hans"]["body"]
    page = client.get(f"/plans/{plan.id}").get_data(as_text=True)
    assert 'data-approval="pending"' in page and "activation-blocked" in page


def test_waba_id_saved_in_channel_settings_is_used_for_the_status_check(client, graph):
    store = make_store("kl", name="Bunga Beauty KL")
    farah = make_staff("manager", [store])
    login(client, farah)
    form = {
        "enabled": "1",
        "base_url": graph.base_url,
        "api_version": "21.0",
        "phone_number_id": "106540352242922",
        "waba_id": WABA,
        "access_token": "wa-token",
        "app_secret": "wa-app-secret",
    }
    assert client.post("/messages/channels/whatsapp", data=form).status_code == 303
    template = member_day_template(store)
    graph.templates = [
        {"name": "member_day_reminder", "language": lang, "status": "APPROVED"}
        for lang in ("en", "zh_CN", "ms")
    ]
    resp = client.post(f"/message-templates/{template.id}/refresh", headers=HX)
    assert resp.status_code == 200 and service.approval(template) == "approved"


def test_plan_page_warns_when_meta_withdraws_an_active_plans_template(client, salon):
    store, farah, _ = salon
    template = member_day_template(store)
    approve_all(template)
    plan = member_day_plan(store, template, status="active")
    login(client, farah)
    assert "template-warning" not in client.get(f"/plans/{plan.id}").get_data(as_text=True)
    paused = {
        "event": "PAUSED",
        "message_template_name": "member_day_reminder",
        "message_template_language": "en",
        "reason": "NONE",
    }
    assert service.handle_status_webhook(store, paused, NOW) == 1
    assert service.variants_of(template)["en"].wa_reason == "paused"
    assert "template-warning" in client.get(f"/plans/{plan.id}").get_data(as_text=True)


def test_hourly_job_checks_only_pending_templates_of_stores_with_a_waba(app, graph):
    from app.tasks import template_jobs

    store = whatsapp_store(graph)
    waiting = member_day_template(store)
    done = member_day_template(store, name="Done", wa_name="birthday_greeting")
    approve_all(done)
    member_day_template(make_store(), name="No WABA")  # no channel settings: never asked
    graph.templates = [
        {"name": "member_day_reminder", "language": lang, "status": "APPROVED"}
        for lang in ("en", "zh_CN", "ms")
    ]
    changes = template_jobs.refresh_whatsapp_templates.call_local()
    assert set(changes) == {waiting.id}
    assert service.approval(waiting) == "approved"
    assert len(graph.requests) == 1  # the approved one and the store without a WABA: not asked
    assert parse_qs(urlparse(graph.requests[0]["path"]).query)["name"] == ["member_day_reminder"]


def test_meta_template_status_webhook_reaches_the_template_only_when_signed(app, client, graph):
    import hashlib
    import hmac

    store = whatsapp_store(graph)
    template = member_day_template(store)
    change = {
        "field": "message_template_status_update",
        "value": {
            "event": "APPROVED",
            "message_template_id": 1000,
            "message_template_name": "member_day_reminder",
            "message_template_language": "ms",
            "reason": "NONE",
        },
    }
    raw = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [change]}]})
    good = "sha256=" + hmac.new(b"wa-app-secret", raw.encode(), hashlib.sha256).hexdigest()
    bad = "sha256=" + hmac.new(b"someone-else", raw.encode(), hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    sig = "X-Hub-Signature-256"
    assert (
        client.post("/hooks/whatsapp/kl", data=raw, headers={**headers, sig: bad}).status_code
        == 401
    )
    assert service.variants_of(template)["ms"].wa_status == "pending"
    assert (
        client.post("/hooks/whatsapp/kl", data=raw, headers={**headers, sig: good}).status_code
        == 200
    )
    assert service.variants_of(template)["ms"].wa_status == "approved"
    assert service.variants_of(template)["en"].wa_status == "pending"
