"""SMS through Twilio's official Python client."""

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.services.channels.base import (
    Adapter,
    Outgoing,
    PermanentError,
    SendResult,
    TransientError,
    UnknownOutcome,
)

# Twilio's documented error codes (twilio.com/docs/api/errors).
PHONE_CODES = {21211, 21214, 21217, 21401, 21407, 21421, 21614}  # invalid / not mobile
CONSENT_CODES = {21610}  # the recipient replied STOP
TRANSIENT_CODES = {20429, 20500, 20503, 30001}


class SmsAdapter(Adapter):
    name = "sms"
    # Twilio's Messages API has no idempotency key: a resend after a lost answer could deliver
    # twice, so a lost answer is never retried blindly.
    idempotent_retry = False

    def client(self) -> Client:
        """A Twilio client (kept: its session keeps the connection alive between messages);
        config["base_url"] points its API domain elsewhere (a test stub)."""
        if getattr(self, "_client", None) is not None:
            return self._client
        http_client = TwilioHttpClient(timeout=float(self.config.get("timeout", self.timeout)))
        client = Client(
            self.secret.get("account_sid") or self.config.get("account_sid"),
            self.secret.get("auth_token"),
            http_client=http_client,
        )
        if self.config.get("base_url"):
            client.api.base_url = self.config["base_url"].rstrip("/")
        self._client = client
        return client

    def send(self, out: Outgoing) -> SendResult:
        """Create a message with a StatusCallback so delivery comes back to us."""
        kwargs = {"to": out.to, "body": out.body}
        if self.config.get("messaging_service_sid"):
            kwargs["messaging_service_sid"] = self.config["messaging_service_sid"]
        else:
            kwargs["from_"] = self.config.get("from", "")
        if out.status_callback_url:
            kwargs["status_callback"] = out.status_callback_url
        try:
            message = self.client().messages.create(**kwargs)
        except TwilioRestException as exc:
            code = exc.code or exc.status
            if exc.status == 429 or exc.status >= 500 or code in TRANSIENT_CODES:
                raise TransientError(exc.msg or str(exc), code=code) from exc
            flag = "phone" if code in PHONE_CODES else "consent" if code in CONSENT_CODES else ""
            raise PermanentError(exc.msg or str(exc), code=code, flag=flag) from exc
        except Exception as exc:  # requests' transport errors
            name = type(exc).__name__
            if name in ("ConnectionError",) and "refused" in str(exc).lower():
                raise TransientError(f"cannot connect: {exc}", code="connect") from exc
            raise UnknownOutcome(f"{name}: {exc}", code="transport") from exc
        return SendResult(message.sid, {"status": message.status})
