"""One adapter per provider; `get_adapter(name)` returns the class for a channel name."""

from app.services.channels.base import (
    Adapter,
    Outgoing,
    PermanentError,
    SendResult,
    TransientError,
    UnknownOutcome,
)

CHANNEL_NAMES = ("whatsapp", "line", "sms", "email", "webhook", "log_only")


def get_adapter(name: str) -> type[Adapter]:
    """The adapter class for a channel name."""
    if name == "email":
        from app.services.channels.email import EmailAdapter

        return EmailAdapter
    if name == "whatsapp":
        from app.services.channels.whatsapp import WhatsAppAdapter

        return WhatsAppAdapter
    if name == "line":
        from app.services.channels.line import LineAdapter

        return LineAdapter
    if name == "sms":
        from app.services.channels.sms import SmsAdapter

        return SmsAdapter
    if name == "webhook":
        from app.services.channels.webhook import WebhookAdapter

        return WebhookAdapter
    if name == "log_only":
        from app.services.channels.log_only import LogOnlyAdapter

        return LogOnlyAdapter
    raise KeyError(name)


__all__ = [
    "Adapter",
    "CHANNEL_NAMES",
    "Outgoing",
    "PermanentError",
    "SendResult",
    "TransientError",
    "UnknownOutcome",
    "get_adapter",
]
