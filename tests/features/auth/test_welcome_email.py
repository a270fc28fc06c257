"""The welcome email reaches a real SMTP server; a failing server never fails registration."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import MakeSettings
from tests.support.accounts import register
from tests.support.app import isolated_app, serve
from tests.support.mail import Inbox, smtp_settings
from tests.support.network import closed_port

WELCOME_SUBJECT = "Welcome to Keel"


async def test_welcome_email_is_delivered_over_smtp(
    make_settings: MakeSettings,
    db_connection: AsyncConnection,
    mail_server: tuple[Inbox, int],
) -> None:
    inbox, port = mail_server
    settings = make_settings(**smtp_settings(port))
    application = isolated_app(settings, db_connection)
    async with serve(application) as http:
        user, _ = await register(http, email="New.Customer@Example.com", full_name="Ada")
    assert len(inbox.received) == 1
    received = inbox.received[0]
    assert received.rcpt_tos == ["new.customer@example.com"]
    assert received.envelope.mail_from == "hello@keel.test"
    assert received.subject == WELCOME_SUBJECT
    assert received.message["To"] == user["email"]
    assert "Ada" in received.text
    assert "Ada" in received.html


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
        if isinstance(r.msg, dict) and r.msg.get("event") == "email_failed"
    ]
    assert failures
    assert failures[0]["message"] == "welcome"
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
