"""Outgoing email behind one small interface: written to the log by default, SMTP when set.

Senders are created in the lifespan and used from background tasks; a failed send is logged
by the caller's task and never fails the request that triggered it.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from keel.core.config import CoreSettings
from keel.core.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Email:
    """One message: `body` is the plain-text part; `html`, when given, its HTML alternative."""

    to: str
    subject: str
    body: str
    html: str | None = None


def mime_message(email: Email, sender: str) -> EmailMessage:
    """The message as it goes out: plain text, with the HTML as its alternative."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message.set_content(email.body)
    if email.html is not None:
        message.add_alternative(email.html, subtype="html")
    return message


class EmailSender(Protocol):
    async def send(self, email: Email) -> None: ...


class LogEmailSender:
    """Development default: the email goes to the log (recipient and subject only: never the
    body, which may hold a reset or verification link)."""

    async def send(self, email: Email) -> None:
        log.info("email_not_sent_log_sender", to=email.to, subject=email.subject)


class SmtpEmailSender:
    def __init__(self, settings: CoreSettings) -> None:
        assert settings.smtp_host is not None
        self._settings = settings

    def _message(self, email: Email) -> EmailMessage:
        return mime_message(email, self._settings.smtp_from)

    async def send(self, email: Email) -> None:
        settings = self._settings
        await aiosmtplib.send(
            self._message(email),
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            use_tls=settings.smtp_tls,
            start_tls=settings.smtp_starttls if not settings.smtp_tls else False,
            validate_certs=settings.smtp_validate_certs,
            timeout=settings.smtp_timeout_seconds,
        )


def build_email_sender(settings: CoreSettings) -> EmailSender:
    return SmtpEmailSender(settings) if settings.smtp_host else LogEmailSender()
