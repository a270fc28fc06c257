"""Registration and login: validation, uniqueness, equal failures, the OAuth2 form."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import httpx
import pytest

from keel.main import create_app
from tests.conftest import MakeSettings
from tests.factories import UserCreateFactory
from tests.support.accounts import USER_FIELDS, Account, login, register
from tests.support.app import serve
from tests.support.assertions import assert_error_body

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"


async def test_register_returns_the_user_without_secrets(client: httpx.AsyncClient) -> None:
    payload = UserCreateFactory.build(email="New.User@Example.com").model_dump()
    response = await client.post(REGISTER, json=payload)
    assert response.status_code == 201
    user = response.json()
    assert user["email"] == "new.user@example.com"
    assert user["roles"] == ["customer"]
    assert user["is_active"] is True
    assert user["is_verified"] is False
    assert set(user) == USER_FIELDS
    assert payload["password"] not in response.text
    assert "argon2" not in response.text
    assert user["created_at"].endswith(("Z", "+00:00"))


async def test_duplicate_email_is_409_case_insensitively(client: httpx.AsyncClient) -> None:
    await register(client, email="dup@example.com")
    again = await client.post(
        REGISTER, json=UserCreateFactory.build(email="DUP@example.com").model_dump()
    )
    error = assert_error_body(again, 409, "CONFLICT")
    assert error["details"] == {"field": "email"}


def fullwidth(text: str) -> str:
    """`norm` in fullwidth letters (U+FF4E...): the look-alike NFKC folds back."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


async def test_a_fullwidth_look_alike_is_the_same_account(
    client: httpx.AsyncClient, admin: Account
) -> None:
    user, password = await register(client, email="norm@example.com")
    look_alike = {"email": f"{fullwidth('norm')}@example.com", "password": "another-pass-1"}
    again = await client.post(REGISTER, json={**look_alike, "full_name": "Mallory"})
    assert_error_body(again, 409, "CONFLICT")
    # A fullwidth at sign too, and in the other places an address is looked up.
    spelled = f"{fullwidth('Norm@')}example.com"
    assert (await client.post(LOGIN, json={"email": spelled, "password": password})).is_success
    found = await client.get(
        "/api/v1/users", params={"email": fullwidth("norm")}, headers=admin.headers
    )
    assert [u["id"] for u in found.json()["items"]] == [user["id"]]


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short", "at least 8 characters"),
        ("x" * 129, "at most 128 characters"),
        ("same@example.com", "must not be the same as the email address"),
        ("SAME@EXAMPLE.COM", "must not be the same as the email address"),
    ],
)
async def test_password_rules_are_named(
    client: httpx.AsyncClient, password: str, rule: str
) -> None:
    response = await client.post(
        REGISTER, json={"email": "same@example.com", "password": password, "full_name": "S"}
    )
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    [problem] = error["details"]["errors"]  # type: ignore[index]
    assert problem["loc"] == ["body", "password"]
    assert rule in problem["msg"]


@pytest.mark.parametrize("email", ["not-an-email", "", "a@", "@example.com"])
async def test_invalid_email_is_422(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post(
        REGISTER, json={"email": email, "password": "longenough1", "full_name": "X"}
    )
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["loc"] == ["body", "email"]  # type: ignore[index]


async def test_login_issues_a_bearer_pair(client: httpx.AsyncClient) -> None:
    user, password = await register(client)
    tokens = await login(client, user["email"].upper(), password)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 15 * 60
    assert tokens["access_token"] != tokens["refresh_token"]
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


async def test_oauth2_form_login_for_the_docs(client: httpx.AsyncClient) -> None:
    user, password = await register(client)
    response = await client.post(
        "/api/v1/auth/token", data={"username": user["email"], "password": password}
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"
    schemes = (await client.get("/openapi.json")).json()["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"


async def test_wrong_password_and_unknown_email_look_the_same(client: httpx.AsyncClient) -> None:
    user, _ = await register(client)
    wrong = await client.post(LOGIN, json={"email": user["email"], "password": "wrong-password"})
    unknown = await client.post(
        LOGIN, json={"email": "nobody@example.com", "password": "wrong-password"}
    )
    first = assert_error_body(wrong, 401, "UNAUTHORIZED")
    second = assert_error_body(unknown, 401, "UNAUTHORIZED")
    assert first["message"] == second["message"] == "Invalid email or password"
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"] == "Bearer"


async def test_wrong_password_and_unknown_email_take_about_the_same_time(
    make_settings: MakeSettings,
) -> None:
    """With a real Argon2 cost, an unknown email must still pay for one verification."""
    settings = make_settings(password_hash_time_cost=2, password_hash_memory_kib=32768)
    async with serve(create_app(settings)) as http:
        user, _ = await register(http)

        async def timed(email: str) -> float:
            started = time.perf_counter()
            response = await http.post(LOGIN, json={"email": email, "password": "wrong-pass"})
            assert response.status_code == 401
            return time.perf_counter() - started

        known = [await timed(user["email"]) for _ in range(5)]
        unknown = [await timed("ghost@example.com") for _ in range(5)]
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2.0, (known, unknown)


async def test_a_taken_email_and_a_new_one_take_about_the_same_time(
    make_settings: MakeSettings,
) -> None:
    """The 409 stays (people need to know), but it must not come back early: the password is
    hashed either way, so timing tells no more than the answer does (under the limit)."""
    settings = make_settings(password_hash_time_cost=2, password_hash_memory_kib=32768)
    async with serve(create_app(settings)) as http:
        taken, _ = await register(http)

        async def timed(email: str, expected: int) -> float:
            payload = UserCreateFactory.build(email=email).model_dump()
            started = time.perf_counter()
            response = await http.post(REGISTER, json=payload)
            assert response.status_code == expected, response.text
            return time.perf_counter() - started

        new = [await timed(f"new-{uuid.uuid4().hex}@example.com", 201) for _ in range(5)]
        duplicate = [await timed(taken["email"], 409) for _ in range(5)]
    ratio = statistics.median(duplicate) / statistics.median(new)
    assert 0.5 < ratio < 2.0, (new, duplicate)


async def test_parallel_duplicate_registrations_give_one_201_and_one_409(
    make_settings: MakeSettings,
) -> None:
    """On the real pool (no shared test connection), racing the unique constraint."""
    async with serve(create_app(make_settings())) as http:
        payload = UserCreateFactory.build().model_dump()
        responses = await asyncio.gather(*(http.post(REGISTER, json=payload) for _ in range(4)))
        statuses = sorted(r.status_code for r in responses)
        created = next(r for r in responses if r.status_code == 201).json()
        # Clean up: this test committed for real.
        admin_view = await http.post(
            LOGIN, json={"email": payload["email"], "password": payload["password"]}
        )
        assert admin_view.status_code == 200
    assert statuses == [201, 409, 409, 409]
    assert created["email"] == payload["email"]


@pytest.mark.parametrize(("username", "password"), [("\x18", "x"), ("a@example.com", "")])
async def test_oauth2_form_with_bad_fields_is_422(
    client: httpx.AsyncClient, username: str, password: str
) -> None:
    response = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["loc"][0] == "body"  # type: ignore[index]
