"""What every channel adapter takes, returns and raises."""

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field


@dataclass
class Outgoing:
    """One message ready for a provider."""

    message_id: int
    idempotency_key: str
    to: str
    body: str
    subject: str = ""
    customer_name: str = ""
    locale: str = "en"
    unsubscribe_url: str = ""
    status_callback_url: str = ""
    template: dict = field(default_factory=dict)


@dataclass
class SendResult:
    provider_message_id: str
    detail: dict = field(default_factory=dict)


class ChannelError(Exception):
    """A provider said no (or said nothing)."""

    def __init__(self, message: str, code: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.code = str(code or "")
        self.retry_after = retry_after


class TransientError(ChannelError):
    """Worth retrying later: timeouts before the request was accepted, 429, 5xx."""


class PermanentError(ChannelError):
    """Never worth retrying; `flag` says what to switch off on the customer.

    flag is "consent" (turn this channel's consent off), "phone" (the number is invalid)
    or "" (a problem of ours — configuration or template — not the customer's).
    """

    def __init__(self, message: str, code: str = "", flag: str = ""):
        super().__init__(message, code)
        self.flag = flag


class UnknownOutcome(ChannelError):
    """The request may have reached the provider but no answer came back."""


class Adapter:
    """A provider adapter built from a store's ChannelSetting (config + decrypted secret)."""

    name = ""
    # True when resending with the same idempotency key cannot deliver twice.
    idempotent_retry = False
    timeout = 10.0

    def __init__(self, config: dict, secret: dict):
        self.config = config or {}
        self.secret = secret or {}

    @staticmethod
    def address(customer) -> str | None:
        """The customer's address on this channel, or None."""
        return customer.phone or None

    def send(self, out: Outgoing) -> SendResult:
        """Hand one message to the provider."""
        raise NotImplementedError


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (only the delta-seconds form is honoured)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def http_json(
    method: str,
    url: str,
    body: dict | None,
    headers: dict,
    timeout: float,
    raw: bytes | None = None,
) -> tuple[int, dict, dict]:
    """Send JSON, read JSON: (status, headers, body); transport failures become ChannelErrors.

    A failure to connect means the provider never saw the request (transient); a timeout or a
    dropped connection after the request went out is an unknown outcome.
    """
    data = raw
    if data is None and body is not None:
        data = json.dumps(body, ensure_ascii=False).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json; charset=utf-8")
    for key, value in headers.items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, resp_headers, answer = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, resp_headers, answer = exc.code, dict(exc.headers or {}), exc.read()
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError | socket.gaierror):
            raise TransientError(f"cannot connect: {reason}", code="connect") from exc
        if isinstance(reason, TimeoutError | socket.timeout):
            raise UnknownOutcome(f"timed out: {reason}", code="timeout") from exc
        raise UnknownOutcome(f"connection failed: {reason}", code="connection") from exc
    except TimeoutError as exc:
        raise UnknownOutcome("timed out waiting for the answer", code="timeout") from exc
    except (ConnectionError, OSError) as exc:
        raise UnknownOutcome(f"connection dropped: {exc}", code="connection") from exc
    try:
        parsed = json.loads(answer.decode() or "{}") if answer else {}
    except ValueError:
        parsed = {"raw": answer[:200].decode(errors="replace")}
    if not isinstance(parsed, dict):
        parsed = {"raw": parsed}
    return status, {k.lower(): v for k, v in resp_headers.items()}, parsed
