"""Hooks other services call after they commit: events react through the plan engine."""

import logging
from datetime import datetime

log = logging.getLogger(__name__)


def after_event(event, now: datetime) -> None:
    """Let the plan engine react to a newly recorded event (withdrawals, conversions)."""
    from app.services import engine, loyalty

    loyalty.credit_for_event(event, now)
    engine.react_to_event(event, now)
