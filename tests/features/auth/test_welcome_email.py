"""The welcome email reaches a real SMTP server; a failing server never fails registration."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.features.auth.emails import WELCOME_SUBJECT
from tests.conftest import MakeSettings
from tests.support.accounts import register
from tests.support.app import isolated_app, serve
from tests.support.network import closed_port, free_port


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_welcome_email_is_delivered_over_smtp(
    make_settings: MakeSettings,
    db_connection: AsyncConnection,
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, port = smtp_server
    settings = make_settings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_from="Keel <hello@keel.test>",
    )
    application = isolated_app(settings, db_connection)
    async with serve(application) as http:
        user, _ = await register(http, email="New.Customer@Example.com", full_name="Ada")
    assert len(inbox.messages) == 1
    envelope = inbox.messages[0]
    assert envelope.rcpt_tos == ["new.customer@example.com"]
    assert envelope.mail_from == "hello@keel.test"
    message = message_from_bytes(envelope.original_content or b"")
    assert message["Subject"] == WELCOME_SUBJECT
    assert message["To"] == user["email"]
    assert "Ada" in message.get_payload()  # type: ignore[operator]


async def test_failing_smtp_server_does_not_fail_registration(
    make_settings: MakeSettings,
    db_connection: AsyncConnection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(
        smtp_host="127.0.0.1", smtp_port=closed_port(), smtp_starttls=False, smtp_timeout_seconds=2
    )
    application = isolated_app(settings, db_connection)
    async with serve(application) as http:
        user, password = await register(http)
        login = await http.post(
            "/api/v1/auth/login", json={"email": user["email"], "password": password}
        )
    assert login.status_code == 200
    failures = [
        r.msg
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "welcome_email_failed"
    ]
    assert failures
    assert failures[0]["to"] == user["email"]


async def test_log_sender_is_the_default(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    user, password = await register(client)
    logged = [
        r.msg
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "email_not_sent_log_sender"
    ]
    assert logged == [{**logged[0], "to": user["email"], "subject": WELCOME_SUBJECT}]
    assert password not in str(logged)
