"""E-mail over SMTP (smtp:// with STARTTLS when offered, or smtps://)."""

import html
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from urllib.parse import unquote, urlparse

from app.services.channels.base import (
    Adapter,
    Outgoing,
    PermanentError,
    SendResult,
    TransientError,
    UnknownOutcome,
)


def parse_smtp_url(url: str) -> dict:
    """smtp://user:pass@host:port or smtps://… → connection settings."""
    parsed = urlparse(url)
    if parsed.scheme not in ("smtp", "smtps"):
        raise PermanentError(f"SMTP_URL must start with smtp:// or smtps:// ({parsed.scheme!r})")
    return {
        "ssl": parsed.scheme == "smtps",
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or (465 if parsed.scheme == "smtps" else 25),
        "user": unquote(parsed.username) if parsed.username else None,
        "password": unquote(parsed.password) if parsed.password else None,
    }


def build_email(out: Outgoing, sender: str, sender_name: str, reply_to: str = "") -> EmailMessage:
    """Plain text and HTML parts, with RFC 8058 one-click unsubscribe headers."""
    msg = EmailMessage()
    msg["Subject"] = out.subject or out.body.splitlines()[0][:80] if out.body else out.subject
    msg["From"] = formataddr((sender_name, sender)) if sender_name else sender
    msg["To"] = out.to
    if reply_to:
        msg["Reply-To"] = reply_to
    domain = sender.rsplit("@", 1)[-1] if "@" in sender else "revisit.local"
    msg["Message-ID"] = make_msgid(idstring=out.idempotency_key, domain=domain)
    msg["X-Revisit-Idempotency-Key"] = out.idempotency_key
    text = out.body
    if out.unsubscribe_url:
        msg["List-Unsubscribe"] = f"<{out.unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        text = f"{out.body}\n\n--\nUnsubscribe: {out.unsubscribe_url}\n"
    msg.set_content(text)
    paragraphs = "".join(
        f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in out.body.split("\n\n")
    )
    footer = ""
    if out.unsubscribe_url:
        footer = (
            f'<p style="font-size:12px;color:#6b7280"><a href="{html.escape(out.unsubscribe_url)}">'
            "Unsubscribe</a></p>"
        )
    msg.add_alternative(
        f'<!doctype html><html><body style="font-family:sans-serif">{paragraphs}{footer}'
        "</body></html>",
        subtype="html",
    )
    return msg


class EmailAdapter(Adapter):
    name = "email"
    idempotent_retry = False

    @staticmethod
    def address(customer) -> str | None:
        """The customer's e-mail address."""
        return customer.email or None

    def send(self, out: Outgoing) -> SendResult:
        """One SMTP conversation; 4xx is transient, 5xx permanent, a lost answer unknown."""
        url = self.secret.get("smtp_url") or self.config.get("smtp_url")
        if not url:
            raise PermanentError("no SMTP_URL configured", code="config")
        conn = parse_smtp_url(url)
        sender = self.config.get("from") or "noreply@revisit.local"
        msg = build_email(
            out, sender, self.config.get("from_name", ""), self.config.get("reply_to", "")
        )
        timeout = float(self.config.get("timeout", self.timeout))
        try:
            if conn["ssl"]:
                context = ssl.create_default_context()
                if self.config.get("insecure_tls"):
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                smtp = smtplib.SMTP_SSL(
                    conn["host"], conn["port"], timeout=timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(conn["host"], conn["port"], timeout=timeout)
        except (ConnectionRefusedError, socket.gaierror, TimeoutError, OSError) as exc:
            raise TransientError(f"cannot connect to SMTP: {exc}", code="connect") from exc
        try:
            with smtp:
                smtp.ehlo()
                if not conn["ssl"] and smtp.has_extn("starttls"):
                    smtp.starttls()
                    smtp.ehlo()
                if conn["user"]:
                    smtp.login(conn["user"], conn["password"] or "")
                refused = smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise _smtp_error(code, reply) from exc
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error(exc.smtp_code, exc.smtp_error) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise UnknownOutcome(f"SMTP server disconnected: {exc}", code="disconnected") from exc
        except (TimeoutError, OSError) as exc:
            raise UnknownOutcome(f"SMTP connection lost: {exc}", code="connection") from exc
        if refused:
            code, reply = next(iter(refused.values()))
            raise _smtp_error(code, reply)
        return SendResult(msg["Message-ID"])


def _smtp_error(code: int, reply) -> Exception:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    if 400 <= code < 500:
        return TransientError(f"SMTP {code} {text}", code=code)
    flag = "consent" if code in (550, 551, 553) else ""
    return PermanentError(f"SMTP {code} {text}", code=code, flag=flag)
