"""WhatsApp Cloud API: approved template messages over the Graph API."""

from app.services.channels.base import (
    Adapter,
    Outgoing,
    PermanentError,
    SendResult,
    TransientError,
    http_json,
    retry_after_seconds,
)

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "21.0"

# Meta's documented error codes (developers.facebook.com … whatsapp/support/error-codes).
RETRY_CODES = {
    1,  # API unknown
    2,  # API service temporarily unavailable
    4,  # API too many calls
    80007,  # WABA rate limit
    130429,  # Cloud API throughput reached
    131000,  # something went wrong
    131016,  # service unavailable
    131048,  # spam rate limit
    131056,  # (business, consumer) pair rate limit
    133004,  # server temporarily unavailable
}
CONSENT_CODES = {
    131026,  # message undeliverable: not on WhatsApp, old app, or has not accepted terms
    131050,  # user stopped marketing messages from this business
    131049,  # Meta chose not to deliver (ecosystem engagement)
}
PHONE_CODES = {131021}  # recipient cannot be the sender
# Everything else (131047 re-engagement window, 132000–132016 template problems, 100 bad
# parameter, 190 expired token, 131031 locked account…) fails the message without blaming the
# customer.


def error_is_transient(code: int) -> bool:
    """Whether a WhatsApp error code is worth retrying."""
    return code in RETRY_CODES


class WhatsAppAdapter(Adapter):
    name = "whatsapp"
    idempotent_retry = False

    def url(self) -> str:
        """POST {base}/v{version}/{phone_number_id}/messages."""
        base = (self.config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        version = str(self.config.get("api_version") or DEFAULT_VERSION).lstrip("v")
        return f"{base}/v{version}/{self.config.get('phone_number_id', '')}/messages"

    def payload(self, out: Outgoing) -> dict:
        """A template message; the idempotency key rides along as biz_opaque_callback_data."""
        template = out.template or {}
        name = template.get("name") or self.config.get("template") or "revisit_message"
        language = template.get("language") or self.config.get("language") or out.locale or "en"
        params = template.get("parameters")
        if params is None:
            params = [out.body]
        components = []
        if params:
            components.append(
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": str(p)} for p in params],
                }
            )
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": out.to.lstrip("+"),
            "type": "template",
            "template": {
                "name": name,
                "language": {"code": language.replace("-", "_")},
                "components": components,
            },
            "biz_opaque_callback_data": out.idempotency_key,
        }

    def send(self, out: Outgoing) -> SendResult:
        """Send one template message and read messages[0].id back."""
        status, headers, body = http_json(
            "POST",
            self.url(),
            self.payload(out),
            {"Authorization": f"Bearer {self.secret.get('access_token', '')}"},
            float(self.config.get("timeout", self.timeout)),
        )
        if 200 <= status < 300:
            messages = body.get("messages") or []
            if not messages or not messages[0].get("id"):
                raise PermanentError("WhatsApp answered without a message id", code="no-id")
            return SendResult(messages[0]["id"], {"wa_id": _wa_id(body)})
        error = body.get("error") or {}
        code = error.get("code")
        text = error.get("message") or f"HTTP {status}"
        details = (error.get("error_data") or {}).get("details")
        if details:
            text = f"{text}: {details}"
        retry_after = retry_after_seconds(headers.get("retry-after"))
        if status == 429 or status >= 500 or (isinstance(code, int) and error_is_transient(code)):
            raise TransientError(text, code=code or status, retry_after=retry_after)
        flag = "consent" if code in CONSENT_CODES else "phone" if code in PHONE_CODES else ""
        raise PermanentError(text, code=code or status, flag=flag)


def _wa_id(body: dict) -> str:
    contacts = body.get("contacts") or []
    return contacts[0].get("wa_id", "") if contacts else ""
