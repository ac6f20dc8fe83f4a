"""LINE Messaging API push messages, made idempotent with X-Line-Retry-Key."""

import uuid

from app.services.channels.base import (
    Adapter,
    Outgoing,
    PermanentError,
    SendResult,
    TransientError,
    http_json,
    retry_after_seconds,
)

DEFAULT_BASE_URL = "https://api.line.me"


def retry_key(idempotency_key: str) -> str:
    """LINE wants a UUID: ours when it is one, else a stable UUID derived from it."""
    try:
        return str(uuid.UUID(idempotency_key))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"revisit:{idempotency_key}"))


class LineAdapter(Adapter):
    name = "line"
    # LINE keeps the retry key for 24 hours: a resend with it answers 409 instead of sending.
    idempotent_retry = True

    @staticmethod
    def address(customer) -> str | None:
        """The LINE user id."""
        return customer.line_id or None

    def send(self, out: Outgoing) -> SendResult:
        """Push one text message; 409 on a reused retry key means it was already accepted."""
        base = (self.config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        status, headers, body = http_json(
            "POST",
            f"{base}/v2/bot/message/push",
            {"to": out.to, "messages": [{"type": "text", "text": out.body[:5000]}]},
            {
                "Authorization": f"Bearer {self.secret.get('channel_access_token', '')}",
                "X-Line-Retry-Key": retry_key(out.idempotency_key),
            },
            float(self.config.get("timeout", self.timeout)),
        )
        if status == 200:
            sent = body.get("sentMessages") or []
            message_id = sent[0].get("id") if sent else headers.get("x-line-request-id", "")
            return SendResult(message_id or retry_key(out.idempotency_key))
        if status == 409 and headers.get("x-line-accepted-request-id"):
            return SendResult(headers["x-line-accepted-request-id"], {"already_accepted": True})
        text = body.get("message") or f"HTTP {status}"
        if status == 429 or status >= 500:
            raise TransientError(
                text, code=status, retry_after=retry_after_seconds(headers.get("retry-after"))
            )
        details = body.get("details") or []
        if status == 400 and any(d.get("property") == "to" for d in details):
            raise PermanentError(text, code=status, flag="consent")
        raise PermanentError(text, code=status)
