"""What the auth tests share: a signed-up customer with a fresh pair of tokens, and apps whose
email a real SMTP server on loopback receives."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from keel.settings import Settings
from tests.support.accounts import Account, signed_up
from tests.support.mail import Inbox, MailedApps, smtp_server


@pytest.fixture
async def account(client: httpx.AsyncClient) -> Account:
    return await signed_up(client)


@pytest.fixture
def mail_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on loopback for the test's length: its inbox and its port."""
    with smtp_server() as server:
        yield server


@pytest.fixture
def mailed(live_settings: Settings, mail_server: tuple[Inbox, int]) -> MailedApps:
    inbox, port = mail_server
    return MailedApps(live_settings, inbox, port)
