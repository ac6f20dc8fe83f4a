"""A demo channel that only writes the message to the log."""

import logging

from app.services.channels.base import Adapter, Outgoing, SendResult

log = logging.getLogger(__name__)


class LogOnlyAdapter(Adapter):
    name = "log_only"
    idempotent_retry = True

    @staticmethod
    def address(customer) -> str | None:
        """Any customer can be 'reached' in the log."""
        return customer.phone or customer.email or customer.line_id or str(customer.id)

    def send(self, out: Outgoing) -> SendResult:
        """Log the message instead of sending it (demos only)."""
        log.info("log-only message %s to %s: %s", out.idempotency_key, out.to, out.body)
        return SendResult(f"log-{out.idempotency_key}")
