"""Who gets what from every route: the access matrix.

Each endpoint maps to a list of requests; each request names the method, a URL built
from the world, and the status expected for each viewer:
  anon        nobody signed in
  employee_a  an employee of store A (the objects below belong to store A)
  manager_b   a manager of store B only
  owner       the owner (every store)
`data` is an optional form/JSON body builder. Add an entry for every new route;
test_access_matrix fails when a registered route has none.
"""

API_401 = dict(anon=401, employee_a=401, manager_b=401, owner=401)
R = 302  # redirect to sign-in (or away from a page that makes no sense when signed in)

ACCESS = {
    "auth.login": [
        ("GET", lambda w: "/login", dict(anon=200, employee_a=R, manager_b=R, owner=R)),
        (
            "POST",
            lambda w: "/login",
            dict(anon=422, employee_a=422, manager_b=422, owner=422),
            lambda w: {"email": w.employee_a.email, "password": "not the password"},
        ),
    ],
    "auth.logout": [
        ("POST", lambda w: "/logout", dict(anon=R, employee_a=303, manager_b=303, owner=303))
    ],
    "auth.password": [
        (
            "GET",
            lambda w: "/account/password",
            dict(anon=R, employee_a=200, manager_b=200, owner=200),
        ),
        (
            "POST",
            lambda w: "/account/password",
            dict(anon=R, employee_a=422, manager_b=422, owner=422),
            lambda w: {"current": "not the password", "new": "a long enough new secret"},
        ),
    ],
    "auth.set_language": [
        (
            "POST",
            lambda w: "/language?lang=th",
            dict(anon=303, employee_a=303, manager_b=303, owner=303),
        )
    ],
    "home.index": [("GET", lambda w: "/", dict(anon=R, employee_a=R, manager_b=R, owner=R))],
    "home.switch_store": [
        (
            "POST",
            lambda w: "/store",
            dict(anon=R, employee_a=303, manager_b=404, owner=303),
            lambda w: {"store_id": w.store_a.id},
        ),
    ],
    "health.healthz": [
        ("GET", lambda w: "/healthz", dict(anon=200, employee_a=200, manager_b=200, owner=200))
    ],
    "followups.today": [
        ("GET", lambda w: "/today", dict(anon=R, employee_a=200, manager_b=200, owner=200))
    ],
    "customers.index": [
        ("GET", lambda w: "/customers", dict(anon=R, employee_a=200, manager_b=200, owner=200))
    ],
    "customers.show": [
        (
            "GET",
            lambda w: f"/customers/{w.customer_a.id}",
            dict(anon=R, employee_a=200, manager_b=404, owner=200),
        ),
    ],
    "plans.index": [
        ("GET", lambda w: "/plans", dict(anon=R, employee_a=403, manager_b=200, owner=200))
    ],
    "plans.new": [
        ("GET", lambda w: "/plans/new", dict(anon=R, employee_a=403, manager_b=200, owner=200)),
        (
            "GET",
            lambda w: "/plans/new?template=card_expiry",
            dict(anon=R, employee_a=403, manager_b=200, owner=200),
        ),
        (
            "POST",
            lambda w: "/plans/new?template=card_expiry",
            dict(anon=R, employee_a=403, manager_b=422, owner=422),
            lambda w: {"name": "", "action_kind": "followup"},
        ),
    ],
    "plans.edit": [
        (
            "GET",
            lambda w: f"/plans/{w.plan_a.id}/edit",
            dict(anon=R, employee_a=403, manager_b=404, owner=200),
        ),
        (
            "POST",
            lambda w: f"/plans/{w.plan_a.id}/edit",
            dict(anon=R, employee_a=403, manager_b=404, owner=200),
            lambda w: {"builder": "add:r", "name": "x"},
        ),
    ],
    "plans.show": [
        (
            "GET",
            lambda w: f"/plans/{w.plan_a.id}",
            dict(anon=R, employee_a=403, manager_b=404, owner=200),
        )
    ],
    "plans.activate": [
        (
            "GET",
            lambda w: f"/plans/{w.plan_a.id}/activate",
            dict(anon=R, employee_a=403, manager_b=404, owner=200),
        )
    ],
    "plans.set_status": [
        (
            "POST",
            lambda w: f"/plans/{w.plan_a.id}/status",
            dict(anon=R, employee_a=403, manager_b=404, owner=303),
            lambda w: {"status": "paused"},
        )
    ],
    "plans.builder": [
        (
            "POST",
            lambda w: "/plans/audience",
            dict(anon=R, employee_a=403, manager_b=404, owner=200),
            lambda w: {"plan_id": w.plan_a.id, "builder": "add:r"},
        )
    ],
    "plans.audience_count": [
        (
            "POST",
            lambda w: "/plans/audience-count",
            dict(anon=R, employee_a=403, manager_b=404, owner=200),
            lambda w: {"plan_id": w.plan_a.id},
        )
    ],
    "plans.preview": [
        (
            "POST",
            lambda w: "/plans/preview",
            dict(anon=R, employee_a=403, manager_b=404, owner=200),
            lambda w: {"plan_id": w.plan_a.id, "name": "x", "action_kind": "followup"},
        )
    ],
    "plans.script_preview": [
        (
            "POST",
            lambda w: "/plans/script-preview",
            dict(anon=R, employee_a=403, manager_b=404, owner=200),
            lambda w: {"plan_id": w.plan_a.id, "script": "Hi {name}"},
        )
    ],
    "dashboard.index": [
        ("GET", lambda w: "/dashboard", dict(anon=R, employee_a=403, manager_b=200, owner=200))
    ],
    "settings.sign_ins": [
        (
            "GET",
            lambda w: "/settings/sign-ins",
            dict(anon=R, employee_a=403, manager_b=200, owner=200),
        )
    ],
    "settings.index": [
        ("GET", lambda w: "/settings", dict(anon=R, employee_a=403, manager_b=200, owner=200))
    ],
    "api.openapi": [
        (
            "GET",
            lambda w: "/api/v1/openapi.json",
            dict(anon=200, employee_a=200, manager_b=200, owner=200),
        )
    ],
    "api.ping": [
        ("GET", lambda w: "/api/v1/ping", dict(anon=401, employee_a=401, manager_b=401, owner=401))
    ],
    # API v1: a web session is no bearer token, so every viewer gets 401 (tokens: test_api*.py).
    "api.create_card_product": [
        (
            "POST",
            lambda w: "/api/v1/card-products",
            API_401,
            lambda w: {"__json__": True, "name": "x"},
        ),
    ],
    "api.create_card": [
        ("POST", lambda w: "/api/v1/cards", API_401, lambda w: {"__json__": True, "name": "x"}),
    ],
    "api.create_customer": [
        ("POST", lambda w: "/api/v1/customers", API_401, lambda w: {"__json__": True, "name": "x"}),
    ],
    "api.get_customer": [
        ("GET", lambda w: f"/api/v1/customers/{w.customer_a.id}", API_401),
    ],
    "api.list_customers": [
        ("GET", lambda w: "/api/v1/customers", API_401),
    ],
    "api.create_event": [
        ("POST", lambda w: "/api/v1/events", API_401, lambda w: {"__json__": True, "name": "x"}),
    ],
    "api.list_followups": [
        ("GET", lambda w: "/api/v1/followups", API_401),
    ],
    "api.log_followup": [
        (
            "POST",
            lambda w: f"/api/v1/followups/{w.followup_a.id}/logs",
            API_401,
            lambda w: {"__json__": True, "name": "x"},
        ),
    ],
    "api.list_messages": [
        ("GET", lambda w: "/api/v1/messages", API_401),
    ],
    "api.list_plan_templates": [
        ("GET", lambda w: "/api/v1/plan-templates", API_401),
    ],
    "api.create_plan": [
        ("POST", lambda w: "/api/v1/plans", API_401, lambda w: {"__json__": True, "name": "x"}),
    ],
    "api.list_plans": [
        ("GET", lambda w: "/api/v1/plans", API_401),
    ],
    "api.get_plan": [
        ("GET", lambda w: f"/api/v1/plans/{w.plan_a.id}", API_401),
    ],
    "api.update_plan": [
        (
            "PATCH",
            lambda w: f"/api/v1/plans/{w.plan_a.id}",
            API_401,
            lambda w: {"__json__": True, "name": "x"},
        ),
    ],
    "api.audience_count": [
        (
            "POST",
            lambda w: f"/api/v1/plans/{w.plan_a.id}/audience-count",
            API_401,
            lambda w: {"__json__": True, "name": "x"},
        ),
    ],
    "api.list_audience_fields": [
        ("GET", lambda w: "/api/v1/audience-fields", API_401),
    ],
    "api.report_summary": [
        ("GET", lambda w: "/api/v1/reports/summary", API_401),
    ],
}


def _leave_of_employee_a(w):
    """A day off of employee A (fresh per request, since deleting it is the request)."""
    from datetime import date

    from app.models import StaffLeave

    day = date(2030, 1, 7)
    return StaffLeave.create(staff=w.employee_a, starts_on=day, ends_on=day)


SIGNED_IN_200 = dict(anon=R, employee_a=200, manager_b=200, owner=200)
STORE_A_ONLY = dict(anon=R, employee_a=200, manager_b=404, owner=200)

# Staff app (issue #4): follow-ups, leave, customer timeline, counter.
ACCESS.update(
    {
        "followups.counts": [("GET", lambda w: "/today/counts", SIGNED_IN_200)],
        "followups.more": [
            ("GET", lambda w: "/today/more?group=today", SIGNED_IN_200),
            (
                "GET",
                lambda w: "/today/more?group=queue",
                dict(anon=R, employee_a=404, manager_b=200, owner=200),
            ),
        ],
        "followups.show": [
            ("GET", lambda w: f"/followups/{w.followup_a.id}", STORE_A_ONLY),
            (
                "GET",
                lambda w: f"/followups/{w.followup_a2.id}",
                dict(anon=R, employee_a=404, manager_b=404, owner=200),
            ),
        ],
        "followups.log": [
            (
                "POST",
                lambda w: f"/followups/{w.followup_a.id}/log",
                dict(anon=R, employee_a=303, manager_b=404, owner=303),
                lambda w: {"outcome": "no_answer"},
            ),
            (
                "POST",
                lambda w: f"/followups/{w.followup_a2.id}/log",
                dict(anon=R, employee_a=404, manager_b=404, owner=303),
                lambda w: {"outcome": "no_answer"},
            ),
        ],
        "followups.undo": [
            (
                "POST",
                lambda w: f"/followups/{w.followup_a.id}/undo",
                dict(anon=R, employee_a=422, manager_b=404, owner=422),
            ),
        ],
        "followups.snooze": [
            (
                "POST",
                lambda w: f"/followups/{w.followup_a.id}/snooze",
                dict(anon=R, employee_a=303, manager_b=404, owner=303),
                lambda w: {"choice": "tomorrow"},
            ),
        ],
        "followups.leave": [
            ("GET", lambda w: "/leave", SIGNED_IN_200),
            (
                "POST",
                lambda w: "/leave",
                dict(anon=R, employee_a=303, manager_b=303, owner=303),
                lambda w: {"starts_on": "2030-01-07", "ends_on": "2030-01-08"},
            ),
        ],
        "followups.cancel_leave": [
            (
                "POST",
                lambda w: f"/leave/{_leave_of_employee_a(w).id}/delete",
                dict(anon=R, employee_a=303, manager_b=404, owner=303),
            ),
        ],
        "customers.history": [
            ("GET", lambda w: f"/customers/{w.customer_a.id}/timeline", STORE_A_ONLY),
        ],
        "counter.new": [
            ("GET", lambda w: f"/customers/{w.customer_a.id}/counter", STORE_A_ONLY),
        ],
        "counter.record": [
            (
                "POST",
                lambda w: f"/customers/{w.customer_a.id}/counter",
                dict(anon=R, employee_a=303, manager_b=404, owner=303),
                lambda w: {"kind": "visit"},
            ),
        ],
    }
)


def _unsubscribe_token(w):
    from itsdangerous import URLSafeSerializer

    serializer = URLSafeSerializer("test-secret", salt="revisit-unsubscribe")
    return serializer.dumps({"c": w.customer_a.id, "ch": "email"})


_MANAGERS = dict(anon=R, employee_a=403, manager_b=200, owner=200)
_NO_CHANNEL = dict(anon=404, employee_a=404, manager_b=404, owner=404)
ACCESS.update(
    {
        "messages.index": [("GET", lambda w: "/messages", _MANAGERS)],
        "messages.channels": [("GET", lambda w: "/messages/channels", _MANAGERS)],
        "messages.save_channel": [
            (
                "POST",
                lambda w: "/messages/channels/log_only",
                dict(anon=R, employee_a=403, manager_b=303, owner=303),
                lambda w: {"per_second": "3"},
            )
        ],
        "messages.save_channel_order": [
            (
                "POST",
                lambda w: "/messages/channels/order",
                dict(anon=R, employee_a=403, manager_b=303, owner=303),
                lambda w: {"order": ["sms", "followup"]},
            )
        ],
        "messages.unsubscribe": [
            (
                "GET",
                lambda w: f"/u/{_unsubscribe_token(w)}",
                dict(anon=200, employee_a=200, manager_b=200, owner=200),
            )
        ],
        "messages.unsubscribe_confirm": [
            (
                "POST",
                lambda w: f"/u/{_unsubscribe_token(w)}",
                dict(anon=200, employee_a=200, manager_b=200, owner=200),
            )
        ],
        "webhooks.whatsapp_verify": [("GET", lambda w: "/hooks/whatsapp/kl", _NO_CHANNEL)],
        "webhooks.whatsapp_events": [("POST", lambda w: "/hooks/whatsapp/kl", _NO_CHANNEL)],
        "webhooks.line_events": [("POST", lambda w: "/hooks/line/kl", _NO_CHANNEL)],
        "webhooks.twilio_status": [("POST", lambda w: "/hooks/twilio/kl/status", _NO_CHANNEL)],
        "webhooks.twilio_inbound": [("POST", lambda w: "/hooks/twilio/kl/inbound", _NO_CHANNEL)],
        "webhooks.webhook_events": [("POST", lambda w: "/hooks/webhook/kl", _NO_CHANNEL)],
    }
)


# ---- loyalty and the client's own page (helper "loyalty")


def _loyalty_reward(w, fresh=False):
    from app.models import Reward

    if fresh:
        return Reward.create(store=w.store_a, name="Tote bag", points_price=100)
    reward, _ = Reward.get_or_create(store=w.store_a, name="Free hair mask", points_price=200)
    return reward


def _loyalty_points(w):
    from app import clock
    from app.services import loyalty

    loyalty.adjust(w.customer_a, 500, "access test", None, clock.now())
    return w.customer_a


def _loyalty_coupon_url(w):
    from app import clock
    from app.services import loyalty

    coupon = loyalty.redeem(_loyalty_points(w), _loyalty_reward(w), clock.now())
    return f"/customers/{w.customer_a.id}/coupons/{coupon.id}/use"


def _portal_token(w):
    from flask import Flask

    from app import clock
    from app.services import loyalty

    signer = Flask("access-rules")
    signer.config["SECRET_KEY"] = "test-secret"
    with signer.app_context():
        return loyalty.portal_token(w.customer_a, clock.now())


_CUSTOMER_A = dict(anon=R, employee_a=200, manager_b=404, owner=200)
_CUSTOMER_A_POST = dict(anon=R, employee_a=303, manager_b=404, owner=303)
_MANAGER_POST = dict(anon=R, employee_a=403, manager_b=303, owner=303)
_MANAGER_OF_A_POST = dict(anon=R, employee_a=403, manager_b=404, owner=303)
_PUBLIC = dict(anon=200, employee_a=200, manager_b=200, owner=200)
_PUBLIC_POST = dict(anon=303, employee_a=303, manager_b=303, owner=303)
ACCESS.update(
    {
        "loyalty.points": [("GET", lambda w: f"/customers/{w.customer_a.id}/points", _CUSTOMER_A)],
        "loyalty.redeem": [
            (
                "POST",
                lambda w: f"/customers/{_loyalty_points(w).id}/points/redeem",
                _CUSTOMER_A_POST,
                lambda w: {"reward_id": _loyalty_reward(w).id},
            )
        ],
        "loyalty.adjust": [
            (
                "POST",
                lambda w: f"/customers/{w.customer_a.id}/points/adjust",
                _MANAGER_OF_A_POST,
                lambda w: {"delta": "25", "reason": "Goodwill"},
            )
        ],
        "loyalty.use_coupon": [("POST", _loyalty_coupon_url, _CUSTOMER_A_POST)],
        "loyalty.rotate_link": [
            ("POST", lambda w: f"/customers/{w.customer_a.id}/portal-link/rotate", _CUSTOMER_A_POST)
        ],
        "loyalty.portal_qr": [
            ("GET", lambda w: f"/customers/{w.customer_a.id}/portal-qr", _CUSTOMER_A)
        ],
        "loyalty.index": [
            ("GET", lambda w: "/loyalty", dict(anon=R, employee_a=403, manager_b=200, owner=200))
        ],
        "loyalty.create_reward": [
            (
                "POST",
                lambda w: "/loyalty/rewards",
                _MANAGER_POST,
                lambda w: {"name": "Free coffee", "points_price": "200"},
            )
        ],
        "loyalty.update_reward": [
            (
                "POST",
                lambda w: f"/loyalty/rewards/{_loyalty_reward(w).id}",
                _MANAGER_OF_A_POST,
                lambda w: {"name": "Free hair mask", "points_price": "250", "active": "1"},
            )
        ],
        "loyalty.delete_reward": [
            (
                "POST",
                lambda w: f"/loyalty/rewards/{_loyalty_reward(w, fresh=True).id}/delete",
                _MANAGER_OF_A_POST,
            )
        ],
        "loyalty.save_settings": [
            (
                "POST",
                lambda w: "/loyalty/settings",
                _MANAGER_POST,
                lambda w: {"loyalty.signup_bonus": "50", "loyalty.coupon_days": "30"},
            )
        ],
        "portal.show": [
            ("GET", lambda w: f"/p/{_portal_token(w)}", _PUBLIC),
            (
                "GET",
                lambda w: f"/p/{_portal_token(w)[:-2]}xx",
                dict(anon=404, employee_a=404, manager_b=404, owner=404),
            ),
        ],
        "portal.redeem": [
            (
                "POST",
                lambda w: f"/p/{_portal_token(_loyalty_points(w) and w)}/redeem",
                _PUBLIC_POST,
                lambda w: {"reward_id": _loyalty_reward(w).id},
            )
        ],
        "portal.consent": [
            (
                "POST",
                lambda w: f"/p/{_portal_token(w)}/consent",
                _PUBLIC_POST,
                lambda w: {"channel": "sms", "granted": "0"},
            )
        ],
    }
)


def _token_of(store) -> int:
    """A fresh API token of the store (its id)."""
    from app.services import tokens

    return tokens.create_token(store, "matrix")[0].id


# API token settings (tokens_ui): managers and owners of the token's store.
ACCESS.update(
    {
        "tokens_ui.index": [
            (
                "GET",
                lambda w: "/settings/tokens",
                dict(anon=R, employee_a=403, manager_b=200, owner=200),
            )
        ],
        "tokens_ui.create": [
            (
                "POST",
                lambda w: "/settings/tokens",
                dict(anon=R, employee_a=403, manager_b=201, owner=201),
                lambda w: {"name": "POS", "store": w.store_b.id},
            )
        ],
        "tokens_ui.revoke": [
            (
                "POST",
                lambda w: f"/settings/tokens/{_token_of(w.store_a)}/revoke",
                dict(anon=R, employee_a=403, manager_b=404, owner=303),
            )
        ],
    }
)


# Manager console (dashboard drill-downs, team, tags, PDF reports, settings, audit).
_M200 = dict(anon=R, employee_a=403, manager_b=200, owner=200)
_OF_A_200 = dict(anon=R, employee_a=403, manager_b=404, owner=200)
_seq_console = iter(range(1, 1_000_000))


def _notice_for_employee_a(w) -> int:
    from app.models import Notice

    return Notice.create(staff=w.employee_a, store=w.store_a, text="Overdue work").id


def _tag_of_a(w):
    from app.models import Tag

    return Tag.get_or_create(store=w.store_a, name="vip")[0]


def _rule_of_a(w) -> int:
    from app.models import TagRule

    return TagRule.create(
        store=w.store_a,
        tag=_tag_of_a(w),
        action="add",
        audience={"all": [{"field": "visit_count", "op": "gt", "value": 3}]},
    ).id


def _report_of_a(w, done: bool = False) -> str:
    from datetime import date

    from app.services import pdf

    report_id = pdf.new_report(
        w.store_a, date(2026, 11, 16), date(2026, 11, 22), w.plan_a.created_at
    )
    if done:
        pdf.pdf_path(report_id).write_bytes(b"%PDF-1.4\n%%EOF\n")
        pdf.write_status(report_id, state="done", progress=100)
    return report_id


def _store_form(w) -> dict:
    return {
        "name": "Bunga Beauty KL",
        "timezone": "Asia/Kuala_Lumpur",
        "region": "MY",
        "currency": "MYR",
        "locale": "en",
        "member_day": "",
        "quiet_start": "21:00",
        "quiet_end": "09:00",
        "fatigue_messages": "2",
        "fatigue_followups": "1",
        "fatigue_days": "7",
        "no_answer_attempts": "3",
        "default_holdout": "0",
        "working_days": ["0", "1", "2", "3", "4", "5"],
        "holidays": "",
    }


ACCESS.update(
    {
        "dashboard.drill": [("GET", lambda w: "/dashboard/drill/returns", _M200)],
        "team.index": [("GET", lambda w: "/team", _M200)],
        "team.followups": [("GET", lambda w: "/team/followups?status=open", _M200)],
        "team.reassign": [
            (
                "POST",
                lambda w: "/team/followups/reassign",
                dict(anon=R, employee_a=403, manager_b=422, owner=200),
                lambda w: {"ids": [w.followup_a.id], "target": str(w.employee_a2.id)},
            )
        ],
        "team.nudge": [("POST", lambda w: f"/team/staff/{w.employee_a.id}/nudge", _OF_A_200)],
        "team.deactivate": [
            ("GET", lambda w: f"/team/staff/{w.employee_a.id}/deactivate", _OF_A_200),
            (
                "POST",
                lambda w: f"/team/staff/{w.employee_a.id}/deactivate",
                dict(anon=R, employee_a=403, manager_b=404, owner=303),
                lambda w: {"target": "queue"},
            ),
        ],
        "team.read_notice": [
            (
                "POST",
                lambda w: f"/team/notices/{_notice_for_employee_a(w)}/read",
                dict(anon=R, employee_a=200, manager_b=404, owner=404),
            )
        ],
        "tags.index": [("GET", lambda w: "/tags", _M200)],
        "tags.create": [
            ("POST", lambda w: "/tags", _M200, lambda w: {"name": f"t{next(_seq_console)}"})
        ],
        "tags.update": [
            (
                "POST",
                lambda w: f"/tags/{_tag_of_a(w).id}",
                _OF_A_200,
                lambda w: {"name": "vip", "dimension": "Value", "colour": "#2563eb"},
            )
        ],
        "tags.delete": [("POST", lambda w: f"/tags/{_tag_of_a(w).id}/delete", _OF_A_200)],
        "tags.bulk": [
            ("GET", lambda w: "/tags/bulk", _M200),
            (
                "POST",
                lambda w: "/tags/bulk",
                dict(anon=R, employee_a=403, manager_b=422, owner=200),
                lambda w: {"tag": _tag_of_a(w).id, "action": "add", "source": "walk-in"},
            ),
        ],
        "customers.bulk_tag": [
            (
                "POST",
                lambda w: "/customers/bulk-tag",
                dict(anon=R, employee_a=403, manager_b=422, owner=200),
                lambda w: {"tag": _tag_of_a(w).id, "bulk_tag": _tag_of_a(w).id, "action": "add"},
            ),
        ],
        "tags.create_rule": [
            ("POST", lambda w: "/tags/rules", _M200, lambda w: {"preset": "high_value"})
        ],
        "tags.toggle_rule": [("POST", lambda w: f"/tags/rules/{_rule_of_a(w)}/toggle", _OF_A_200)],
        "tags.delete_rule": [("POST", lambda w: f"/tags/rules/{_rule_of_a(w)}/delete", _OF_A_200)],
        "tags.run_rules": [
            (
                "POST",
                lambda w: "/tags/rules/run",
                dict(anon=R, employee_a=403, manager_b=303, owner=303),
            )
        ],
        "reports.index": [("GET", lambda w: "/reports", _M200)],
        "reports.create": [
            (
                "POST",
                lambda w: "/reports",
                dict(anon=R, employee_a=403, manager_b=201, owner=201),
                lambda w: {"start": "2026-11-16", "end": "2026-11-22"},
            )
        ],
        "reports.status": [("GET", lambda w: f"/reports/{_report_of_a(w)}/status", _OF_A_200)],
        "reports.download": [
            ("GET", lambda w: f"/reports/{_report_of_a(w, done=True)}.pdf", _OF_A_200)
        ],
        "settings.store": [
            ("GET", lambda w: f"/settings/stores/{w.store_a.id}", _OF_A_200),
            ("POST", lambda w: f"/settings/stores/{w.store_a.id}", _OF_A_200, _store_form),
        ],
        "settings.prices": [
            ("POST", lambda w: f"/settings/stores/{w.store_a.id}/prices", _OF_A_200)
        ],
        "settings.new_staff": [
            ("GET", lambda w: "/settings/staff/new", _M200),
            (
                "POST",
                lambda w: "/settings/staff/new",
                dict(anon=R, employee_a=403, manager_b=201, owner=201),
                lambda w: {
                    "name": "New person",
                    "email": f"new{next(_seq_console)}@example.test",
                    "role": "employee",
                    "stores": [w.store_b.id],
                },
            ),
        ],
        "settings.edit_staff": [
            ("GET", lambda w: f"/settings/staff/{w.employee_a.id}", _OF_A_200),
            (
                "POST",
                lambda w: f"/settings/staff/{w.employee_a.id}",
                _OF_A_200,
                lambda w: {
                    "name": "Aisyah",
                    "email": "aisyah@example.test",
                    "role": "employee",
                    "stores": [w.store_a.id],
                },
            ),
        ],
        "settings.audit_log": [("GET", lambda w: "/settings/audit?type=tag", _M200)],
    }
)


_IMPORT_CSV = b"name,phone\nAisyah,0123456789\nBad,12\n"


def _import_job(w, state: str = "uploaded") -> str:
    """An import job of store A: uploaded, checked (mapping saved) or done."""
    from app import clock
    from app.services import import_jobs

    now = clock.now()
    job_id = import_jobs.create_job(w.store_a, w.manager_a, "customers", "c.csv", _IMPORT_CSV, now)
    if state in ("checked", "done"):
        options = {"create_tags": True, "triggers_plans": True}
        import_jobs.start_check(job_id, {"name": "name", "phone": "phone"}, None, options, now)
        import_jobs.check(job_id, now)
    if state == "done":
        import_jobs.queue(job_id, now)
        import_jobs.run(job_id, now)
    return job_id


_MANAGERS = dict(anon=R, employee_a=403, manager_b=200, owner=200)
_JOB_A = dict(anon=R, employee_a=403, manager_b=404, owner=200)

# Import and export (imports, exports): managers and owners, only their stores' jobs.
ACCESS.update(
    {
        "imports.index": [("GET", lambda w: "/imports", _MANAGERS)],
        "imports.upload": [
            (
                "POST",
                lambda w: "/imports",
                dict(anon=R, employee_a=403, manager_b=303, owner=303),
                lambda w: {
                    "kind": "customers",
                    "file": (__import__("io").BytesIO(_IMPORT_CSV), "c.csv"),
                },
            )
        ],
        "imports.mapping": [("GET", lambda w: f"/imports/{_import_job(w)}/mapping", _JOB_A)],
        "imports.checked": [
            ("GET", lambda w: f"/imports/{_import_job(w, 'checked')}/check", _JOB_A)
        ],
        "imports.check": [
            (
                "POST",
                lambda w: f"/imports/{_import_job(w)}/mapping",
                _JOB_A,
                lambda w: {"col-0": "name", "col-1": "phone"},
            )
        ],
        "imports.run": [
            (
                "POST",
                lambda w: f"/imports/{_import_job(w, 'checked')}/run",
                dict(anon=R, employee_a=403, manager_b=404, owner=303),
            )
        ],
        "imports.show": [("GET", lambda w: f"/imports/{_import_job(w, 'done')}", _JOB_A)],
        "imports.status": [("GET", lambda w: f"/imports/{_import_job(w, 'done')}/status", _JOB_A)],
        "imports.cancel": [("POST", lambda w: f"/imports/{_import_job(w, 'done')}/cancel", _JOB_A)],
        "imports.resume": [("POST", lambda w: f"/imports/{_import_job(w, 'done')}/resume", _JOB_A)],
        "imports.rejected": [
            ("GET", lambda w: f"/imports/{_import_job(w, 'done')}/rejected.csv", _JOB_A)
        ],
        "exports.index": [("GET", lambda w: "/exports", _MANAGERS)],
        "exports.download": [
            ("GET", lambda w: "/exports/customers.csv", _MANAGERS),
            ("GET", lambda w: "/exports/followups.csv?status=open", _MANAGERS),
            ("GET", lambda w: "/exports/contacts.csv", _MANAGERS),
            ("GET", lambda w: "/exports/messages.csv", _MANAGERS),
            (
                "GET",
                lambda w: "/exports/customers.csv?start=nope",
                dict(anon=R, employee_a=403, manager_b=422, owner=422),
            ),
        ],
    }
)


# ---- message templates for plans (helper "builder")


def _message_template_of_a(w) -> int:
    from app import clock
    from app.models import MessageTemplate
    from app.services import message_templates

    template = MessageTemplate.get_or_none(MessageTemplate.store == w.store_a.id)
    if template is None:
        template = message_templates.save_template(
            w.store_a,
            {"name": "Member day", "variants": {"en": {"body": "Hi {name}"}}},
            clock.now(),
        )
    return template.id


_TEMPLATE_A = dict(anon=R, employee_a=403, manager_b=404, owner=200)
ACCESS.update(
    {
        "message_templates.index": [("GET", lambda w: "/message-templates", _MANAGERS)],
        "message_templates.new": [
            ("GET", lambda w: "/message-templates/new", _MANAGERS),
            (
                "POST",
                lambda w: "/message-templates/new",
                dict(anon=R, employee_a=403, manager_b=422, owner=422),
                lambda w: {"name": ""},
            ),
        ],
        "message_templates.edit": [
            ("GET", lambda w: f"/message-templates/{_message_template_of_a(w)}", _TEMPLATE_A),
            (
                "POST",
                lambda w: f"/message-templates/{_message_template_of_a(w)}",
                dict(anon=R, employee_a=403, manager_b=404, owner=422),
                lambda w: {"name": ""},
            ),
        ],
        "message_templates.refresh": [
            (
                "POST",
                lambda w: f"/message-templates/{_message_template_of_a(w)}/refresh",
                dict(anon=R, employee_a=403, manager_b=404, owner=422),
            )
        ],
        "message_templates.preview": [
            (
                "POST",
                lambda w: f"/message-templates/{_message_template_of_a(w)}/preview",
                _TEMPLATE_A,
                lambda w: {"q": "小红"},
            )
        ],
        "message_templates.delete": [
            (
                "POST",
                lambda w: f"/message-templates/{_message_template_of_a(w)}/delete",
                dict(anon=R, employee_a=403, manager_b=404, owner=303),
            )
        ],
    }
)
