"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, and the reading of
what it received: recipient, subject, both parts, and the link in them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from keel.main import create_app
from keel.settings import Settings
from tests.support.app import serve
from tests.support.network import free_port

LINK = re.compile(r"https?://[^\s\"<>]+")


@dataclass(frozen=True)
class Received:
    """One message as the server got it."""

    envelope: Envelope
    message: EmailMessage

    @property
    def rcpt_tos(self) -> list[str]:
        return list(self.envelope.rcpt_tos)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, self.message
        assert body.get_content_subtype() == subtype, self.message
        return str(body.get_content())

    @property
    def text(self) -> str:
        return self.part("plain")

    @property
    def html(self) -> str:
        return self.part("html")

    def links(self) -> list[str]:
        """Every link of the text part; the HTML part must carry the same ones."""
        found = LINK.findall(self.text)
        for link in found:
            assert link.replace("&", "&amp;") in self.html or link in self.html, link
        return found

    def token(self) -> str:
        """The token of the message's one link with a token, as the frontend would read it."""
        tokens = [parse_qs(urlsplit(link).query).get("token") for link in self.links()]
        found = [values[0] for values in tokens if values]
        assert len(found) == 1, self.links()
        return found[0]


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 Message accepted for delivery"

    @property
    def received(self) -> list[Received]:
        return [
            Received(
                envelope,
                message_from_bytes(  # type: ignore[arg-type]
                    envelope.original_content or b"", policy=policy.default
                ),
            )
            for envelope in self.messages
        ]

    def to(self, address: str) -> list[Received]:
        return [message for message in self.received if address in message.rcpt_tos]

    def clear(self) -> None:
        self.messages.clear()


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def smtp_settings(port: int) -> dict[str, Any]:
    """Settings overrides that send through the test server."""
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "smtp_from": "Keel <hello@keel.test>",
        "public_url": "https://shop.keel.test/app",
    }


@dataclass
class MailedApps:
    """Apps with real commits (`live_settings`) whose email goes to the test's SMTP server."""

    live_settings: Settings
    inbox: Inbox
    port: int

    def settings(self, **overrides: Any) -> Settings:
        return self.live_settings.model_copy(update={**smtp_settings(self.port), **overrides})

    def serve(self, **overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        """`async with mailed.serve(rate_limit_x="2/minute") as http`: one such app, served
        in-process, with `overrides` to its settings."""
        return serve(create_app(self.settings(**overrides)))
