"""Hooks other services call after they commit: loyalty, tag rules and the plan engine react."""

import logging
from datetime import datetime

log = logging.getLogger(__name__)


def after_any_event(event) -> None:
    """Record which contacts the event brings back: every event, imported history too (a visit
    is a fact even when it must not trigger plans)."""
    from app.services import reports

    reports.attribute_event(event)


def after_event(event, now: datetime) -> None:
    """Credit points, re-run tag rules for the customer, then let the plan engine react."""
    from app.services import engine, loyalty, tagging

    loyalty.credit_for_event(event, now)
    tagging.run_rules_for_customer(event.customer, now)
    engine.react_to_event(event, now)
