"""Local provider stubs on 127.0.0.1 that answer as the providers document.

Each stub records every request it gets and answers according to a queue of modes
(`stub.script("429", "ok")`); with the queue empty it answers "ok". Modes:
  ok            the documented success answer
  429           rate limited (with Retry-After)
  500           a server error
  error:<code>  the provider's documented error object with that code
  timeout       accept the message, then answer only after the client gave up
  drop          accept the message, then close the connection without answering
"""

import base64
import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

_ids = itertools.count(1)


class StubServer:
    """A threaded HTTP server on 127.0.0.1 with recorded requests and scripted answers."""

    timeout_sleep = 1.5
    delay = 0.0  # seconds to wait, after accepting, before every answer
    idle_timeout = None  # seconds after which an idle kept-alive connection is closed

    def __init__(self):
        self.requests: list[dict] = []
        self.accepted: list[dict] = []
        self.modes: list[str] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes
            timeout = stub.idle_timeout

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "raw": raw,
                    "peer": self.client_address[1],
                }
                with stub.lock:
                    stub.requests.append(request)
                    mode = stub.modes.pop(0) if stub.modes else "ok"
                status, headers, body = stub.answer(request, mode)
                if mode in ("timeout", "drop"):
                    with stub.lock:
                        stub.accepted.append(request)
                if mode == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "timeout":
                    time.sleep(stub.timeout_sleep)
                elif stub.delay:
                    time.sleep(stub.delay)
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header(
                        "Content-Type", headers.get("Content-Type", "application/json")
                    )
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = _handle
            do_GET = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *modes: str) -> None:
        with self.lock:
            self.modes.extend(modes)

    def answer(self, request: dict, mode: str) -> tuple[int, dict, object]:
        raise NotImplementedError

    def ok(self, request: dict) -> None:
        with self.lock:
            self.accepted.append(request)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class WhatsAppStub(StubServer):
    """Graph API POST /v{version}/{phone_number_id}/messages (Cloud API)."""

    def __init__(self, token: str = "wa-token", app_secret: str = "wa-app-secret"):
        self.token = token
        self.app_secret = app_secret
        super().__init__()

    def answer(self, request, mode):
        if request["headers"].get("authorization") != f"Bearer {self.token}":
            return 401, {}, _graph_error(190, "Invalid OAuth access token.", "OAuthException")
        body = json.loads(request["raw"] or b"{}")
        if mode.startswith("error:"):
            code = int(mode.split(":", 1)[1])
            return 400, {}, _graph_error(code, f"(#{code}) error {code}", "OAuthException")
        if mode == "429":
            return (
                429,
                {"Retry-After": "2"},
                _graph_error(130429, "Rate limit hit", "OAuthException"),
            )
        if mode == "500":
            return 500, {}, _graph_error(131000, "Something went wrong", "OAuthException")
        if body.get("messaging_product") != "whatsapp" or body.get("type") != "template":
            return 400, {}, _graph_error(100, "Invalid parameter", "OAuthException")
        if mode == "ok":
            self.ok(request)
        wamid = f"wamid.HBgM{next(_ids):08d}"
        request["wamid"] = wamid
        return (
            200,
            {},
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": wamid, "message_status": "accepted"}],
            },
        )

    def sent(self) -> list[dict]:
        """The JSON bodies of the messages this stub accepted."""
        return [json.loads(r["raw"]) for r in self.accepted]

    def status_webhook(self, statuses: list[tuple[str, str, str]]) -> tuple[bytes, dict]:
        """A signed `messages` webhook with statuses [(wamid, status, biz_opaque_callback_data)]."""
        payload = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "60300000000",
                                    "phone_number_id": "106540352242922",
                                },
                                "statuses": [
                                    {
                                        "id": wamid,
                                        "status": status,
                                        "timestamp": str(int(time.time())),
                                        "recipient_id": "60123456789",
                                        "biz_opaque_callback_data": key,
                                        **(
                                            {
                                                "errors": [
                                                    {
                                                        "code": 131026,
                                                        "title": "Message undeliverable",
                                                    }
                                                ]
                                            }
                                            if status == "failed"
                                            else {}
                                        ),
                                    }
                                    for wamid, status, key in statuses
                                ],
                            },
                        }
                    ],
                }
            ],
        }
        return self.sign(payload)

    def reply_webhook(self, from_number: str, text: str) -> tuple[bytes, dict]:
        """A signed inbound text message from a customer."""
        payload = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"phone_number_id": "106540352242922"},
                                "contacts": [{"profile": {"name": "x"}, "wa_id": from_number}],
                                "messages": [
                                    {
                                        "from": from_number,
                                        "id": f"wamid.IN{next(_ids)}",
                                        "timestamp": str(int(time.time())),
                                        "type": "text",
                                        "text": {"body": text},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
        return self.sign(payload)

    def sign(self, payload: dict, secret: str | None = None) -> tuple[bytes, dict]:
        raw = json.dumps(payload, ensure_ascii=False).encode()
        mac = hmac.new((secret or self.app_secret).encode(), raw, hashlib.sha256).hexdigest()
        return raw, {"X-Hub-Signature-256": f"sha256={mac}", "Content-Type": "application/json"}


def _graph_error(code: int, message: str, kind: str) -> dict:
    return {
        "error": {
            "message": message,
            "type": kind,
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": message},
            "fbtrace_id": "AbCdEfGh",
        }
    }


class LineStub(StubServer):
    """LINE Messaging API POST /v2/bot/message/push with X-Line-Retry-Key."""

    def __init__(self, token: str = "line-token", channel_secret: str = "line-secret"):
        self.token = token
        self.channel_secret = channel_secret
        self.keys: dict[str, str] = {}
        super().__init__()

    def answer(self, request, mode):
        if request["headers"].get("authorization") != f"Bearer {self.token}":
            return (
                401,
                {},
                {
                    "message": "Authentication failed. Confirm that the access token in the authorization header is valid."
                },
            )
        key = request["headers"].get("x-line-retry-key")
        request_id = f"req-{next(_ids)}"
        if key and key in self.keys:
            return (
                409,
                {"x-line-request-id": request_id, "x-line-accepted-request-id": self.keys[key]},
                {"message": "The retry key is already accepted"},
            )
        if mode == "429":
            return (
                429,
                {"Retry-After": "1"},
                {"message": "The API rate limit has been exceeded. Try again later."},
            )
        if mode == "500":
            return 500, {}, {"message": "Internal server error"}
        if mode.startswith("error:"):
            return (
                400,
                {},
                {
                    "message": "The request body has 1 error(s)",
                    "details": [{"message": "Invalid user ID", "property": "to"}],
                },
            )
        if key:
            self.keys[key] = request_id
        if mode == "ok":
            self.ok(request)
        return (
            200,
            {"x-line-request-id": request_id},
            {"sentMessages": [{"id": f"{next(_ids)}4619", "quoteToken": "q"}]},
        )

    def webhook(self, events: list[dict], secret: str | None = None) -> tuple[bytes, dict]:
        """A signed LINE webhook (X-Line-Signature = base64 HMAC-SHA256 of the body)."""
        raw = json.dumps({"destination": "U00000", "events": events}, ensure_ascii=False).encode()
        mac = hmac.new((secret or self.channel_secret).encode(), raw, hashlib.sha256).digest()
        return raw, {
            "X-Line-Signature": base64.b64encode(mac).decode(),
            "Content-Type": "application/json",
        }


class TwilioStub(StubServer):
    """Twilio REST POST /2010-04-01/Accounts/{AccountSid}/Messages.json (form-encoded)."""

    def __init__(self, account_sid: str = "AC" + "1" * 32, auth_token: str = "tw-token"):
        self.account_sid = account_sid
        self.auth_token = auth_token
        super().__init__()

    def answer(self, request, mode):
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request["headers"].get("authorization") != f"Basic {expected}":
            return (
                401,
                {},
                {
                    "code": 20003,
                    "message": "Authenticate",
                    "more_info": "https://www.twilio.com/docs/errors/20003",
                    "status": 401,
                },
            )
        if not request["path"].startswith(f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"):
            return 404, {}, {"code": 20404, "message": "not found", "status": 404}
        form = {k: v[-1] for k, v in parse_qs(request["raw"].decode()).items()}
        request["form"] = form
        if mode == "429":
            return (
                429,
                {},
                {
                    "code": 20429,
                    "message": "Too Many Requests",
                    "more_info": "https://www.twilio.com/docs/errors/20429",
                    "status": 429,
                },
            )
        if mode == "500":
            return 500, {}, {"code": 20500, "message": "Internal Server Error", "status": 500}
        if mode.startswith("error:"):
            code = int(mode.split(":", 1)[1])
            return (
                400,
                {},
                {
                    "code": code,
                    "message": f"The 'To' number {form.get('To')} is not a valid phone number.",
                    "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": 400,
                },
            )
        if mode == "ok":
            self.ok(request)
        sid = f"SM{next(_ids):032d}"
        request["sid"] = sid
        return (
            201,
            {},
            {
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": form.get("Body"),
                "date_created": "Tue, 24 Nov 2026 10:00:00 +0000",
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_segments": "1",
                "price": None,
                "sid": sid,
                "status": "queued",
                "to": form.get("To"),
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
        )


class WebhookReceiver(StubServer):
    """Another system receiving our signed webhook; it drops repeats of an idempotency key."""

    def __init__(self, secret: str = "hook-secret"):
        self.secret = secret
        self.delivered: dict[str, dict] = {}
        self.bad_signatures = 0
        super().__init__()

    def answer(self, request, mode):
        headers = request["headers"]
        ts = headers.get("x-revisit-timestamp", "")
        mac = hmac.new(self.secret.encode(), ts.encode() + b"." + request["raw"], hashlib.sha256)
        if headers.get("x-revisit-signature") != "sha256=" + mac.hexdigest():
            self.bad_signatures += 1
            return 401, {}, {"error": "bad signature"}
        if mode == "429":
            return 429, {"Retry-After": "1"}, {"error": "slow down"}
        if mode == "500":
            return 503, {}, {"error": "unavailable"}
        if mode.startswith("error:"):
            return 422, {}, {"error": "rejected", "code": mode.split(":", 1)[1]}
        key = headers.get("x-revisit-idempotency-key")
        if key not in self.delivered:
            self.delivered[key] = json.loads(request["raw"])
        if mode == "ok":
            self.ok(request)
        return 200, {}, {"id": f"ext-{key}"}


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""

    def __init__(self, refuse: set[str] | None = None):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.messages: list[dict] = []
        self.refuse = refuse or set()
        sink = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                if address in sink.refuse:
                    return "550 5.1.1 User unknown"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                sink.messages.append(
                    {
                        "from": envelope.mail_from,
                        "to": list(envelope.rcpt_tos),
                        "data": envelope.content,
                        "login": getattr(session, "login_data", None),
                    }
                )
                return "250 Message accepted for delivery"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"smtp-pass"
            return AuthResult(success=ok)

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticator,
            auth_require_tls=False,
        )
        self.controller.start()

    @property
    def url(self) -> str:
        return f"smtp://mailer:smtp-pass@127.0.0.1:{self.port}"

    def close(self) -> None:
        self.controller.stop()
