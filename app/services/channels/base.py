"""What every channel adapter takes, returns and raises."""

import http.client
import json
import os
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


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


# Keep-alive connections per thread and (scheme, host, port): a provider sees one TCP (and TLS)
# handshake per sender, not one per message. Idle ones are dropped before servers drop them.
IDLE_SECONDS = 30.0
_pool = threading.local()


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """True when an idle kept-alive socket was closed by the server (it reads as ready)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _connection(scheme: str, host: str, port: int | None, timeout: float):
    """A kept-alive connection to the host, reconnected when the old one went stale."""
    if getattr(_pool, "pid", None) != os.getpid():
        # A forked worker must not share its parent's sockets.
        _pool.pid, _pool.conns = os.getpid(), {}
    conns = _pool.conns
    key = (scheme, host, port)
    conn = conns.get(key)
    if conn is not None and (
        _dropped(conn) or time.monotonic() - getattr(conn, "revisit_used", 0) > IDLE_SECONDS
    ):
        conn.close()
        conn = None
    if conn is None:
        if scheme == "https":
            conn = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conns[key] = conn
    conn.timeout = timeout
    return conn


def _forget(conn) -> None:
    conn.close()
    conns = getattr(_pool, "conns", {})
    for key, value in list(conns.items()):
        if value is conn:
            del conns[key]


def close_connections() -> None:
    """Close this thread's kept-alive provider connections."""
    conns = getattr(_pool, "conns", {}) if getattr(_pool, "pid", None) == os.getpid() else {}
    _pool.pid, _pool.conns = os.getpid(), {}
    for conn in conns.values():
        conn.close()


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
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentError(f"not an http(s) URL: {url!r}", code="config")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent_headers = {"Content-Type": "application/json; charset=utf-8", **headers}
    for attempt in (1, 2):
        conn = _connection(parts.scheme, parts.hostname, parts.port, timeout)
        try:
            if conn.sock is None:
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            else:
                conn.sock.settimeout(timeout)
        except (ConnectionRefusedError, socket.gaierror) as exc:
            _forget(conn)
            raise TransientError(f"cannot connect: {exc}", code="connect") from exc
        except OSError as exc:  # connect timeout, unreachable, TLS handshake
            _forget(conn)
            raise TransientError(f"cannot connect: {exc}", code="connect") from exc
        reused = getattr(conn, "revisit_used", 0) > 0
        try:
            conn.request(method, target, body=data, headers=sent_headers)
        except (BrokenPipeError, ConnectionResetError) as exc:
            _forget(conn)
            if reused and attempt == 1:
                # The server closed the idle connection before reading: resend on a new one.
                continue
            raise UnknownOutcome(f"connection dropped: {exc}", code="connection") from exc
        except OSError as exc:
            _forget(conn)
            raise UnknownOutcome(f"connection failed: {exc}", code="connection") from exc
        try:
            resp = conn.getresponse()
            status, resp_headers, answer = resp.status, resp.getheaders(), resp.read()
        except TimeoutError as exc:
            _forget(conn)
            raise UnknownOutcome("timed out waiting for the answer", code="timeout") from exc
        except (http.client.HTTPException, OSError) as exc:
            _forget(conn)
            raise UnknownOutcome(f"connection dropped: {exc}", code="connection") from exc
        if resp.will_close:
            _forget(conn)
        else:
            conn.revisit_used = time.monotonic()
        break
    try:
        parsed = json.loads(answer.decode() or "{}") if answer else {}
    except ValueError:
        parsed = {"raw": answer[:200].decode(errors="replace")}
    if not isinstance(parsed, dict):
        parsed = {"raw": parsed}
    return status, {k.lower(): v for k, v in resp_headers}, parsed
