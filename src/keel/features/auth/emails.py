"""The account emails: one Jinja2 template pair (HTML and plain text) per message, rendered
with the product name (KEEL_APP_NAME) and links built on KEEL_PUBLIC_URL.

Templates live in `keel/templates/email/`: `NAME.html` (autoescaped, so a full name cannot
inject markup) and `NAME.txt` (not escaped: it is plain text). Links point at the frontend's
pages (`/verify-email`, `/reset-password`), which post the token to the API.

Every message is sent after the response, from a background task: a failure is logged (the
recipient and the message name, never the body or a link) and never reaches the client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.background import BackgroundTasks

from keel.core.config import CoreSettings
from keel.core.email import Email, EmailSender
from keel.core.logging import get_logger

log = get_logger(__name__)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "email"


class Message(StrEnum):
    WELCOME = "welcome"
    VERIFY_EMAIL = "verify_email"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a name, not a secret
    EMAIL_CHANGED = "email_changed"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a name, not a secret


SUBJECTS: dict[Message, str] = {
    Message.WELCOME: "Welcome to {product}",
    Message.VERIFY_EMAIL: "Confirm your email address for {product}",
    Message.PASSWORD_RESET: "Reset your {product} password",
    Message.EMAIL_CHANGED: "Your {product} email address was changed",
    Message.PASSWORD_CHANGED: "Your {product} password was changed",
}

VERIFY_PAGE = "/verify-email"
RESET_PAGE = "/reset-password"
FORGOT_PAGE = "/forgot-password"


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,  # a missing variable is a bug, not an empty string
        keep_trailing_newline=True,
    )


def subject(settings: CoreSettings, message: Message) -> str:
    return SUBJECTS[message].format(product=settings.app_name)


def link(settings: CoreSettings, page: str, token: str | None = None) -> str:
    """An absolute link on KEEL_PUBLIC_URL, with the token as its query when there is one."""
    query = f"?{urlencode({'token': token})}" if token is not None else ""
    return f"{settings.public_base_url}{page}{query}"


def _duration(lifetime: timedelta) -> str:
    minutes = int(lifetime.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"{days} day{'s' if days != 1 else ''}"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minutes"


def render(settings: CoreSettings, message: Message, to: str, **context: Any) -> Email:
    """Both parts of `message` for `to`; `context` fills the template's own variables."""
    values = {
        "product": settings.app_name,
        "to": to,
        "subject": subject(settings, message),
        **context,
    }
    environment = _environment()
    return Email(
        to=to,
        subject=values["subject"],
        body=environment.get_template(f"{message.value}.txt").render(values),
        html=environment.get_template(f"{message.value}.html").render(values),
    )


def verification_lifetime(settings: CoreSettings) -> timedelta:
    return timedelta(hours=settings.email_verification_hours)


def reset_lifetime(settings: CoreSettings) -> timedelta:
    return timedelta(minutes=settings.password_reset_minutes)


def welcome_email(settings: CoreSettings, to: str, full_name: str, token: str | None) -> Email:
    """The welcome, carrying the verification link (one email at registration, not two)."""
    return _token_email(settings, Message.WELCOME, to, full_name, token)


def verify_email(
    settings: CoreSettings, to: str, full_name: str, token: str, *, changing: bool = False
) -> Email:
    """A verification link; `changing` when `to` is the new address of a change of email."""
    return _token_email(settings, Message.VERIFY_EMAIL, to, full_name, token, changing=changing)


def password_reset_email(settings: CoreSettings, to: str, full_name: str, token: str) -> Email:
    return _token_email(settings, Message.PASSWORD_RESET, to, full_name, token)


_TOKEN_LINKS: dict[Message, tuple[str, Callable[[CoreSettings], timedelta]]] = {
    Message.WELCOME: (VERIFY_PAGE, verification_lifetime),
    Message.VERIFY_EMAIL: (VERIFY_PAGE, verification_lifetime),
    Message.PASSWORD_RESET: (RESET_PAGE, reset_lifetime),
}
"""The page that redeems each message's one-time token, and how long such a token lasts."""


def _token_email(
    settings: CoreSettings,
    message: Message,
    to: str,
    full_name: str,
    token: str | None,
    **context: Any,
) -> Email:
    """A message whose point is its one-time link, saying how long the link works."""
    page, lifetime = _TOKEN_LINKS[message]
    return render(
        settings,
        message,
        to,
        full_name=full_name,
        link=link(settings, page, token) if token is not None else None,
        valid_for=_duration(lifetime(settings)),
        **context,
    )


def email_changed_email(settings: CoreSettings, old: str, new: str, full_name: str) -> Email:
    """The notice to the old address once a change of email is confirmed."""
    return render(settings, Message.EMAIL_CHANGED, old, full_name=full_name, new_email=new)


def password_changed_email(
    settings: CoreSettings, to: str, full_name: str, *, signed_out: bool
) -> Email:
    return render(
        settings,
        Message.PASSWORD_CHANGED,
        to,
        full_name=full_name,
        link=link(settings, FORGOT_PAGE),
        signed_out=signed_out,
    )


@dataclass(frozen=True, slots=True)
class Sample:
    """What `keel email preview` fills a message with."""

    to: str = "ada@example.com"
    full_name: str = "Ada Lovelace"
    # A placeholder printed into previews, never a credential:
    token: str = "PREVIEW-TOKEN"  # noqa: S105  # keel-audit: ignore[KA402] preview placeholder


def preview(settings: CoreSettings, message: Message, sample: Sample | None = None) -> Email:
    """`message` rendered with sample values, for `keel email preview NAME`."""
    s = sample or Sample()
    builders = {
        Message.WELCOME: lambda: welcome_email(settings, s.to, s.full_name, s.token),
        Message.VERIFY_EMAIL: lambda: verify_email(settings, s.to, s.full_name, s.token),
        Message.PASSWORD_RESET: lambda: password_reset_email(settings, s.to, s.full_name, s.token),
        Message.EMAIL_CHANGED: lambda: email_changed_email(
            settings, s.to, "ada.new@example.com", s.full_name
        ),
        Message.PASSWORD_CHANGED: lambda: password_changed_email(
            settings, s.to, s.full_name, signed_out=True
        ),
    }
    return builders[message]()


async def deliver(sender: EmailSender, email: Email, message: Message) -> None:
    """Send from a background task: a failure is logged and never reaches the client."""
    try:
        await sender.send(email)
    except Exception as exc:
        log.error("email_failed", message=message.value, to=email.to, error_type=type(exc).__name__)
    else:
        log.info("email_sent", message=message.value, to=email.to)


@dataclass(frozen=True, slots=True)
class Outbox:
    """One request's account emails: rendered with its settings and sent after its response
    (a background task running `deliver`), so neither the SMTP exchange nor its failure is
    part of the answer. The `AccountMail` dependency builds it."""

    settings: CoreSettings
    sender: EmailSender
    background: BackgroundTasks

    def send(self, message: Message, email: Email) -> None:
        self.background.add_task(deliver, self.sender, email, message)
