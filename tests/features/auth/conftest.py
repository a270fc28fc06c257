"""What the auth tests share: a signed-up customer with a fresh pair of tokens."""

from __future__ import annotations

import httpx
import pytest

from tests.support.accounts import Account, signed_up


@pytest.fixture
async def account(client: httpx.AsyncClient) -> Account:
    return await signed_up(client)
