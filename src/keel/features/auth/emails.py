"""The welcome email, sent after registration from a background task."""

from __future__ import annotations

from keel.core.email import Email, EmailSender
from keel.core.logging import get_logger

log = get_logger(__name__)

WELCOME_SUBJECT = "Welcome to Keel"


def welcome_email(to: str, full_name: str) -> Email:
    return Email(
        to=to,
        subject=WELCOME_SUBJECT,
        body=f"Hello {full_name},\n\nYour Keel account is ready. Sign in with {to}.\n",
    )


async def send_welcome_email(sender: EmailSender, to: str, full_name: str) -> None:
    """Runs after the response: a failure is logged and never reaches the client."""
    try:
        await sender.send(welcome_email(to, full_name))
    except Exception as exc:
        log.error("welcome_email_failed", to=to, error_type=type(exc).__name__)
    else:
        log.info("welcome_email_sent", to=to)
