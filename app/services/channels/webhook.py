"""A generic signed JSON webhook, so any other system can deliver for us."""

import hashlib
import hmac
import json
import time

from app.services.channels.base import (
    Adapter,
    Outgoing,
    PermanentError,
    SendResult,
    TransientError,
    http_json,
    retry_after_seconds,
)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, given: str, now: float, tolerance=300) -> bool:
    """A signature that matches and a timestamp within `tolerance` seconds of now."""
    if not secret or not timestamp or not given:
        return False
    try:
        if abs(now - int(timestamp)) > tolerance:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), given)


class WebhookAdapter(Adapter):
    name = "webhook"
    # Receivers must drop repeats of X-Revisit-Idempotency-Key, so a resend is safe.
    idempotent_retry = True

    @staticmethod
    def address(customer) -> str | None:
        """Whatever the receiving system can route: the phone, else e-mail, else our id."""
        return customer.phone or customer.email or str(customer.id)

    def send(self, out: Outgoing) -> SendResult:
        """POST the message as signed JSON; a 2xx answer accepts it."""
        payload = {
            "id": out.idempotency_key,
            "message_id": out.message_id,
            "to": out.to,
            "customer_name": out.customer_name,
            "subject": out.subject,
            "body": out.body,
            "locale": out.locale,
            "status_callback_url": out.status_callback_url,
        }
        raw = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        timestamp = str(int(time.time()))
        sig = signature(self.secret.get("signing_secret", ""), timestamp, raw.encode())
        status, headers, body = http_json(
            "POST",
            self.config.get("url", ""),
            None,
            {
                "X-Revisit-Timestamp": timestamp,
                "X-Revisit-Signature": sig,
                "X-Revisit-Idempotency-Key": out.idempotency_key,
            },
            float(self.config.get("timeout", self.timeout)),
            raw=raw.encode(),
        )
        if 200 <= status < 300:
            return SendResult(str(body.get("id") or out.idempotency_key))
        text = str(body.get("error") or body.get("message") or f"HTTP {status}")
        if status in (408, 429) or status >= 500:
            raise TransientError(
                text, code=status, retry_after=retry_after_seconds(headers.get("retry-after"))
            )
        flag = {"invalid_address": "phone", "opted_out": "consent"}.get(body.get("code", ""), "")
        raise PermanentError(text, code=body.get("code") or status, flag=flag)
