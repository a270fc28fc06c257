"""PATCH /users/me: partial updates, nulls refused, password change rules."""

from __future__ import annotations

import httpx
import pytest

from tests.support.accounts import Account, login, signed_up
from tests.support.assertions import assert_error_body

ME = "/api/v1/users/me"


@pytest.fixture
async def account(client: httpx.AsyncClient) -> Account:
    return await signed_up(client, full_name="Original Name")


async def patch(client: httpx.AsyncClient, account: Account, body: object) -> httpx.Response:
    return await client.patch(ME, json=body, headers=account.headers)


async def test_only_sent_fields_change(client: httpx.AsyncClient, account: Account) -> None:
    before = (await client.get(ME, headers=account.headers)).json()
    response = await patch(client, account, {"full_name": "New Name"})
    assert response.status_code == 200
    after = response.json()
    assert after["full_name"] == "New Name"
    assert after["email"] == before["email"]
    assert after["roles"] == before["roles"]
    assert after["updated_at"] >= before["updated_at"]


async def test_empty_patch_changes_nothing(client: httpx.AsyncClient, account: Account) -> None:
    response = await patch(client, account, {})
    assert response.status_code == 200
    assert response.json()["full_name"] == "Original Name"


@pytest.mark.parametrize("field", ["full_name", "email", "password"])
async def test_explicit_null_is_refused(
    client: httpx.AsyncClient, account: Account, field: str
) -> None:
    error = assert_error_body(await patch(client, account, {field: None}), 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["loc"] == ["body", field]  # type: ignore[index]


@pytest.mark.parametrize("field", ["roles", "is_active", "password_hash", "id"])
async def test_privileged_fields_cannot_be_patched(
    client: httpx.AsyncClient, account: Account, field: str
) -> None:
    response = await patch(client, account, {field: ["admin"] if field == "roles" else True})
    assert_error_body(response, 422, "VALIDATION_ERROR")
    me = (await client.get(ME, headers=account.headers)).json()
    assert me["roles"] == ["customer"]


async def test_email_change_must_stay_unique(client: httpx.AsyncClient, account: Account) -> None:
    other = await signed_up(client)
    response = await patch(
        client, account, {"email": other.email.upper(), "current_password": account.password}
    )
    assert_error_body(response, 409, "CONFLICT")


async def test_email_change_to_a_look_alike_of_a_taken_address_is_409(
    client: httpx.AsyncClient, account: Account
) -> None:
    other = await signed_up(client)
    local, domain = other.email.split("@")
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in local)
    response = await patch(
        client, account, {"email": f"{fullwidth}@{domain}", "current_password": account.password}
    )
    assert_error_body(response, 409, "CONFLICT")


async def test_email_change_is_normalised_and_waits_for_confirmation(
    client: httpx.AsyncClient, account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    response = await patch(
        client, account, {"email": "Moved@Example.COM", "current_password": account.password}
    )
    assert response.status_code == 200
    assert response.json()["email"] == account.email  # switched only once confirmed
    sent_to = [
        r.msg["to"]
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "email_not_sent_log_sender"
    ]
    assert sent_to[-1] == "moved@example.com"


async def test_email_change_needs_the_current_password(
    client: httpx.AsyncClient, account: Account
) -> None:
    """An access token alone (stolen from a log, a browser) must not move the account."""
    missing = await patch(client, account, {"email": "taken-over@example.com"})
    wrong = await patch(
        client, account, {"email": "taken-over@example.com", "current_password": "nope-nope"}
    )
    error = assert_error_body(missing, 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["loc"] == ["body", "current_password"]  # type: ignore[index]
    refused = assert_error_body(wrong, 403, "FORBIDDEN")
    assert refused["details"] == {"field": "current_password"}
    assert (await client.get(ME, headers=account.headers)).json()["email"] == account.email
    # The schema says an email comes with the current password, whatever its value.
    same = await patch(client, account, {"email": account.email})
    assert_error_body(same, 422, "VALIDATION_ERROR")


async def test_password_change_needs_the_current_password(
    client: httpx.AsyncClient, account: Account
) -> None:
    missing = await patch(client, account, {"password": "brand-new-pass"})
    wrong = await patch(
        client, account, {"password": "brand-new-pass", "current_password": "nope-nope"}
    )
    error = assert_error_body(missing, 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["loc"] == ["body", "current_password"]  # type: ignore[index]
    # A well-formed body (its schema holds) whose proof is refused: 403, not 422.
    refused = assert_error_body(wrong, 403, "FORBIDDEN")
    assert refused["details"] == {"field": "current_password"}
    await login(client, account.email, account.password)  # unchanged


async def test_new_password_cannot_be_the_email(
    client: httpx.AsyncClient, account: Account
) -> None:
    response = await patch(
        client, account, {"password": account.email, "current_password": account.password}
    )
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert "email" in error["details"]["errors"][0]["msg"]  # type: ignore[index]


async def test_password_change_revokes_every_other_session(
    client: httpx.AsyncClient, account: Account
) -> None:
    elsewhere = await login(client, account.email, account.password)
    response = await patch(
        client, account, {"password": "brand-new-pass", "current_password": account.password}
    )
    assert response.status_code == 200
    # The session that changed the password keeps working...
    assert (await client.get(ME, headers=account.headers)).status_code == 200
    # ...every other one stops at once, access and refresh tokens alike.
    other_headers = {"Authorization": f"Bearer {elsewhere['access_token']}"}
    assert_error_body(await client.get(ME, headers=other_headers), 401, "UNAUTHORIZED")
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]}
    )
    assert_error_body(refreshed, 401, "UNAUTHORIZED")
    old = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert_error_body(old, 401, "UNAUTHORIZED")
    await login(client, account.email, "brand-new-pass")
