"""Password reset, email verification and change of email, end to end.

Every message is received by a real SMTP server on loopback; the tests read the recipient,
subject and both parts, then follow the link's token through the API as a frontend would.
The app runs on its own pool with real commits (`live_settings`): the reset request does its
work in a background task with its own transaction, after the response.
"""

from __future__ import annotations

import gc
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import update
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.core.database import Database
from keel.core.models import utcnow
from keel.features.auth.models import AccountToken
from keel.main import create_app
from keel.settings import Settings
from tests.support.accounts import Account, login, signed_up
from tests.support.app import serve, verified_only_routes
from tests.support.assertions import assert_error_body
from tests.support.mail import Inbox, MailedApps, Received
from tests.support.network import closed_port

RESET = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
VERIFY = "/api/v1/auth/verify-email"
RESEND = "/api/v1/auth/verify-email/resend"
ME = "/api/v1/users/me"
PUBLIC = "https://shop.keel.test/app"


@dataclass
class Shop:
    http: httpx.AsyncClient
    inbox: Inbox
    settings: Settings

    def only(self, to: str, subject: str) -> Received:
        found = [m for m in self.inbox.to(to) if m.subject == subject]
        assert len(found) == 1, [(m.rcpt_tos, m.subject) for m in self.inbox.received]
        return found[0]


@pytest.fixture
async def shop(mailed: MailedApps) -> AsyncIterator[Shop]:
    async with mailed.serve() as http:
        yield Shop(http, mailed.inbox, mailed.settings())


async def expire_tokens(settings: Settings) -> None:
    database = Database.from_settings(settings)
    try:
        async with database.transaction() as session:
            await session.execute(
                update(AccountToken).values(expires_at=utcnow().replace(year=2000))
            )
    finally:
        await database.dispose()


async def ask_reset(shop: Shop, email: str) -> httpx.Response:
    response = await shop.http.post(RESET, json={"email": email})
    assert response.status_code == 202, response.text
    return response


def reset_mail(shop: Shop, to: str) -> Received:
    return shop.only(to, "Reset your Keel password")


async def reset_token(shop: Shop, account: Account) -> str:
    """Ask for a reset of `account` and read the token its email carries."""
    await ask_reset(shop, account.email)
    return reset_mail(shop, account.email).token()


# --- password reset -----------------------------------------------------------------------


async def test_reset_email_link_sets_the_password_and_ends_every_session(shop: Shop) -> None:
    account = await signed_up(shop.http, full_name="Grace")
    other_device = await login(shop.http, account.email, account.password)
    await ask_reset(shop, account.email.upper())

    mail = reset_mail(shop, account.email)
    assert mail.rcpt_tos == [account.email]
    assert "Grace" in mail.text
    assert "Grace" in mail.html
    assert "1 hour" in mail.text
    (link,) = mail.links()
    assert link.startswith(f"{PUBLIC}/reset-password?token=")
    assert f'href="{link}"' in mail.html

    confirm = await shop.http.post(
        CONFIRM, json={"token": mail.token(), "new_password": "a-brand-new-pass"}
    )
    assert confirm.status_code == 204, confirm.text

    # Access tokens stop at once, refresh families are revoked, on every device.
    assert_error_body(await shop.http.get(ME, headers=account.headers), 401, "UNAUTHORIZED")
    for refresh in (account.refresh_token, other_device["refresh_token"]):
        again = await shop.http.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert_error_body(again, 401, "UNAUTHORIZED")
    old = await shop.http.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert_error_body(old, 401, "UNAUTHORIZED")
    fresh = await login(shop.http, account.email, "a-brand-new-pass")
    me = await shop.http.get(ME, headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert me.json()["is_verified"] is True  # following the link proved the address

    notice = shop.only(account.email, "Your Keel password was changed")
    assert "every device was signed out" in notice.text
    assert "every device was signed out" in notice.html
    assert notice.links() == [f"{PUBLIC}/forgot-password"]


async def test_a_reset_token_works_once(shop: Shop) -> None:
    account = await signed_up(shop.http)
    token = await reset_token(shop, account)
    first = await shop.http.post(CONFIRM, json={"token": token, "new_password": "first-new-pass"})
    assert first.status_code == 204
    second = await shop.http.post(CONFIRM, json={"token": token, "new_password": "other-new-pass"})
    error = assert_error_body(second, 401, "UNAUTHORIZED")
    assert error["details"] == {"field": "token"}
    await login(shop.http, account.email, "first-new-pass")


async def test_expired_and_tampered_reset_tokens_are_refused(shop: Shop) -> None:
    account = await signed_up(shop.http)
    token = await reset_token(shop, account)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (tampered, "not-a-token", token + "x"):
        response = await shop.http.post(
            CONFIRM, json={"token": bad, "new_password": "a-brand-new-pass"}
        )
        assert_error_body(response, 401, "UNAUTHORIZED")
    await expire_tokens(shop.settings)
    expired = await shop.http.post(
        CONFIRM, json={"token": token, "new_password": "a-brand-new-pass"}
    )
    expired_error = assert_error_body(expired, 401, "UNAUTHORIZED")
    # One answer for every bad token: nobody learns which of them was nearly right.
    assert expired_error["message"] == "This link is invalid, has expired or was already used"
    await login(shop.http, account.email, account.password)  # unchanged


async def test_a_newer_reset_link_replaces_the_older(shop: Shop) -> None:
    account = await signed_up(shop.http)
    older = await reset_token(shop, account)
    shop.inbox.clear()
    newer = await reset_token(shop, account)
    refused = await shop.http.post(CONFIRM, json={"token": older, "new_password": "new-pass-one"})
    assert_error_body(refused, 401, "UNAUTHORIZED")
    taken = await shop.http.post(CONFIRM, json={"token": newer, "new_password": "new-pass-two"})
    assert taken.status_code == 204


async def test_reset_for_an_unknown_address_answers_the_same_and_sends_nothing(
    shop: Shop,
) -> None:
    account = await signed_up(shop.http)
    shop.inbox.clear()
    known = await ask_reset(shop, account.email)
    unknown = await ask_reset(shop, "nobody-here@example.com")
    assert known.json() == unknown.json()
    assert known.headers["content-type"] == unknown.headers["content-type"]
    assert [m.rcpt_tos for m in shop.inbox.received] == [[account.email]]


async def test_a_verification_token_is_not_a_reset_token(shop: Shop) -> None:
    account = await signed_up(shop.http)
    verify_token = shop.only(account.email, "Welcome to Keel").token()
    response = await shop.http.post(
        CONFIRM, json={"token": verify_token, "new_password": "a-brand-new-pass"}
    )
    assert_error_body(response, 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"token": "x", "new_password": "short"}, ["body", "new_password"]),
        ({"new_password": "long-enough-pass"}, ["body", "token"]),
        ({"token": "", "new_password": "long-enough-pass"}, ["body", "token"]),
    ],
)
async def test_malformed_confirm_is_422(shop: Shop, body: dict[str, str], loc: list[str]) -> None:
    error = assert_error_body(await shop.http.post(CONFIRM, json=body), 422, "VALIDATION_ERROR")
    assert [e["loc"] for e in error["details"]["errors"]] == [loc]  # type: ignore[index]


async def test_new_password_cannot_be_the_email(shop: Shop) -> None:
    account = await signed_up(shop.http)
    token = await reset_token(shop, account)
    response = await shop.http.post(CONFIRM, json={"token": token, "new_password": account.email})
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["loc"] == ["body", "new_password"]  # type: ignore[index]
    # The refusal rolled back: the token still works.
    retry = await shop.http.post(CONFIRM, json={"token": token, "new_password": "fine-new-pass"})
    assert retry.status_code == 204


async def test_malformed_reset_request_is_422(shop: Shop) -> None:
    response = await shop.http.post(RESET, json={"email": "not-an-address"})
    assert_error_body(response, 422, "VALIDATION_ERROR")


async def test_reset_requests_are_limited_per_account_and_per_ip(mailed: MailedApps) -> None:
    async with mailed.serve(rate_limit_password_reset_account="2/minute") as http:
        for spelling in ("Target@Example.com", "target@example.com"):
            assert (await http.post(RESET, json={"email": spelling})).status_code == 202
        third = await http.post(RESET, json={"email": "TARGET@example.com"})
        error = assert_error_body(third, 429, "RATE_LIMITED")
        assert error["details"] == {"limit": "password_reset_account"}
        assert third.headers["retry-after"].isdigit()
        other = await http.post(RESET, json={"email": "someone-else@example.com"})
        assert other.status_code == 202
    async with mailed.serve(rate_limit_password_reset_ip="2/minute") as http:
        for n in range(2):
            response = await http.post(RESET, json={"email": f"user{n}@example.com"})
            assert response.status_code == 202
        limited = await http.post(RESET, json={"email": "user9@example.com"})
        assert assert_error_body(limited, 429, "RATE_LIMITED")["details"] == {
            "limit": "password_reset_ip"
        }


async def test_token_endpoints_are_limited_per_ip(mailed: MailedApps) -> None:
    async with mailed.serve(rate_limit_account_token_ip="2/minute") as http:
        await http.post(CONFIRM, json={"token": "guess-1", "new_password": "long-enough-1"})
        await http.post(VERIFY, json={"token": "guess-2"})
        limited = await http.post(VERIFY, json={"token": "guess-3"})
    assert assert_error_body(limited, 429, "RATE_LIMITED")["details"] == {
        "limit": "account_token_ip"
    }


async def test_reset_limits_fail_closed_when_the_store_is_down(
    live_settings: Settings,
) -> None:
    settings = live_settings.model_copy(
        update={
            "redis_url": SecretStr(f"redis://127.0.0.1:{closed_port()}/0"),
            "job_broker": "embedded",
        }
    )
    async with serve(create_app(settings)) as http:
        reset = await http.post(RESET, json={"email": "a@example.com"})
        confirm = await http.post(VERIFY, json={"token": "whatever"})
    assert_error_body(reset, 503, "SERVICE_UNAVAILABLE")
    assert_error_body(confirm, 503, "SERVICE_UNAVAILABLE")


class ResponseClock:
    """Times each request to its last response byte: what the client waits for (background
    tasks run after it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.last = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.last = time.perf_counter() - started
            await send(message)

        await self.app(scope, receive, timed)


async def test_known_and_unknown_addresses_take_about_the_same_time(mailed: MailedApps) -> None:
    """The login test's technique: medians of alternating rounds, compared as a ratio. The
    request path is the same code for both (the lookup is in the background task), so this
    guards against someone moving the lookup back onto it."""
    clock = ResponseClock(create_app(mailed.settings()))
    async with serve(cast(FastAPI, clock)) as http:
        account = await signed_up(http)

        async def timed(email: str) -> float:
            response = await http.post(RESET, json={"email": email})
            assert response.status_code == 202
            return clock.last

        known: list[float] = []
        unknown: list[float] = []
        # As timeit does: no garbage collection while timing (a collection triggered by the
        # previous background task's allocations would land on whichever request is next).
        gc.collect()
        gc.disable()
        try:
            await _alternate(timed, account.email, known, unknown)
        finally:
            gc.enable()
    assert (
        len(mailed.inbox.to(account.email)) == 1 + ROUNDS
    )  # the welcome, then every reset was sent
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2.0, (known, unknown)


ROUNDS = 30
"""Each request takes about 2 ms: many rounds, so that a burst of load from elsewhere on the
machine moves neither median."""


async def _alternate(
    timed: Callable[[str], Awaitable[float]],
    email: str,
    known: list[float],
    unknown: list[float],
) -> None:
    for round_ in range(ROUNDS):
        # Which goes first alternates, so whatever the previous request left behind (its
        # background task's commit and SMTP exchange) falls on both sides equally.
        ghost = f"ghost-{uuid.uuid4().hex}@example.com"
        if round_ % 2:
            unknown.append(await timed(ghost))
            known.append(await timed(email))
        else:
            known.append(await timed(email))
            unknown.append(await timed(ghost))


# --- email verification -------------------------------------------------------------------


async def test_the_welcome_email_carries_a_working_verification_link(shop: Shop) -> None:
    account = await signed_up(shop.http, full_name="Ada")
    me = await shop.http.get(ME, headers=account.headers)
    assert me.json()["is_verified"] is False
    welcome = shop.only(account.email, "Welcome to Keel")
    assert "Ada" in welcome.text
    assert "Ada" in welcome.html
    (link,) = welcome.links()
    assert link.startswith(f"{PUBLIC}/verify-email?token=")
    verified = await shop.http.post(VERIFY, json={"token": welcome.token()})
    assert verified.status_code == 204, verified.text
    assert (await shop.http.get(ME, headers=account.headers)).json()["is_verified"] is True
    again = await shop.http.post(VERIFY, json={"token": welcome.token()})
    assert_error_body(again, 401, "UNAUTHORIZED")


async def test_tampered_expired_and_reset_tokens_do_not_verify(shop: Shop) -> None:
    account = await signed_up(shop.http)
    token = shop.only(account.email, "Welcome to Keel").token()
    assert_error_body(
        await shop.http.post(VERIFY, json={"token": token[::-1]}), 401, "UNAUTHORIZED"
    )
    assert_error_body(
        await shop.http.post(VERIFY, json={"token": await reset_token(shop, account)}),
        401,
        "UNAUTHORIZED",
    )
    await expire_tokens(shop.settings)
    assert_error_body(await shop.http.post(VERIFY, json={"token": token}), 401, "UNAUTHORIZED")
    assert (await shop.http.get(ME, headers=account.headers)).json()["is_verified"] is False


async def test_resend_sends_a_new_link_that_replaces_the_old(shop: Shop) -> None:
    account = await signed_up(shop.http, full_name="Lin")
    first = shop.only(account.email, "Welcome to Keel").token()
    response = await shop.http.post(RESEND, headers=account.headers)
    assert response.status_code == 202
    mail = shop.only(account.email, "Confirm your email address for Keel")
    assert mail.rcpt_tos == [account.email]
    assert "Lin" in mail.text
    assert "Lin" in mail.html
    assert "2 days" in mail.text
    assert_error_body(await shop.http.post(VERIFY, json={"token": first}), 401, "UNAUTHORIZED")
    assert (await shop.http.post(VERIFY, json={"token": mail.token()})).status_code == 204
    # Once verified, a resend answers the same and sends nothing.
    shop.inbox.clear()
    assert (await shop.http.post(RESEND, headers=account.headers)).status_code == 202
    assert shop.inbox.received == []


async def test_resend_needs_a_login_and_is_limited_per_account(mailed: MailedApps) -> None:
    async with mailed.serve(rate_limit_verify_resend_account="1/minute") as http:
        assert_error_body(await http.post(RESEND), 401, "UNAUTHORIZED")
        account = await signed_up(http)
        other = await signed_up(http)
        assert (await http.post(RESEND, headers=account.headers)).status_code == 202
        limited = await http.post(RESEND, headers=account.headers)
        assert_error_body(limited, 429, "RATE_LIMITED")
        assert (await http.post(RESEND, headers=other.headers)).status_code == 202


async def _gated_calls(
    http: httpx.AsyncClient, routes: list[tuple[str, str]], account: Account
) -> list[httpx.Response]:
    return [
        await http.request(method, path, json={}, headers=account.headers)
        for method, path in routes
    ]


async def test_unverified_accounts_are_refused_by_verified_only_routes_when_required(
    mailed: MailedApps,
) -> None:
    routes = verified_only_routes()
    async with mailed.serve(require_verified_email=True) as http:
        account = await signed_up(http)
        for refused in await _gated_calls(http, routes, account):
            error = assert_error_body(refused, 403, "EMAIL_NOT_VERIFIED")
            assert "verify" in str(error["message"]).lower()
        token = mailed.inbox.to(account.email)[0].token()
        assert (await http.post(VERIFY, json={"token": token})).status_code == 204
        passed = await _gated_calls(http, routes, account)
    assert [r.status_code for r in passed if r.status_code == 403] == []  # past the gate


async def test_unverified_accounts_pass_the_gate_when_not_required(shop: Shop) -> None:
    assert shop.settings.verified_email_required is False  # the test/development default
    account = await signed_up(shop.http)
    routes = verified_only_routes()
    for response in await _gated_calls(shop.http, routes, account):
        assert response.status_code != 403, response.text


# --- change of email -----------------------------------------------------------------------


async def change_email(shop: Shop, account: Account, new: str) -> httpx.Response:
    return await shop.http.patch(
        ME, json={"email": new, "current_password": account.password}, headers=account.headers
    )


async def test_a_new_email_switches_only_once_confirmed(shop: Shop) -> None:
    account = await signed_up(shop.http, full_name="Mo")
    shop.inbox.clear()
    response = await change_email(shop, account, "Mo.New@Example.com")
    assert response.status_code == 200
    assert response.json()["email"] == account.email
    assert shop.inbox.to(account.email) == []  # nothing to the old address yet
    confirm = shop.only("mo.new@example.com", "Confirm your email address for Keel")
    assert "You asked to use mo.new@example.com" in confirm.text
    assert "mo.new@example.com" in confirm.html
    # Until confirmed, the old address is the login.
    await login(shop.http, account.email, account.password)

    assert (await shop.http.post(VERIFY, json={"token": confirm.token()})).status_code == 204
    me = (await shop.http.get(ME, headers=account.headers)).json()
    assert (me["email"], me["is_verified"]) == ("mo.new@example.com", True)
    notice = shop.only(account.email, "Your Keel email address was changed")
    assert notice.rcpt_tos == [account.email]
    for part in (notice.text, notice.html):
        assert "mo.new@example.com" in part
        assert "Mo" in part
    await login(shop.http, "mo.new@example.com", account.password)
    old = await shop.http.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert_error_body(old, 401, "UNAUTHORIZED")


async def test_a_change_to_an_address_taken_meanwhile_is_409(shop: Shop) -> None:
    account = await signed_up(shop.http)
    assert (await change_email(shop, account, "wanted@example.com")).status_code == 200
    token = shop.only("wanted@example.com", "Confirm your email address for Keel").token()
    await signed_up(shop.http, email="wanted@example.com")
    response = await shop.http.post(VERIFY, json={"token": token})
    assert_error_body(response, 409, "CONFLICT")
    me = (await shop.http.get(ME, headers=account.headers)).json()
    assert me["email"] == account.email


async def test_a_change_needs_the_current_password_and_sends_nothing_without_it(
    shop: Shop,
) -> None:
    account = await signed_up(shop.http)
    shop.inbox.clear()
    wrong = await shop.http.patch(
        ME,
        json={"email": "thief@example.com", "current_password": "not-my-password"},
        headers=account.headers,
    )
    assert_error_body(wrong, 403, "FORBIDDEN")
    assert shop.inbox.received == []


async def test_an_old_verification_link_does_not_verify_a_changed_address(shop: Shop) -> None:
    account = await signed_up(shop.http)
    welcome_token = shop.only(account.email, "Welcome to Keel").token()
    assert (await change_email(shop, account, "elsewhere@example.com")).status_code == 200
    change_token = shop.only("elsewhere@example.com", "Confirm your email address for Keel")
    assert (await shop.http.post(VERIFY, json={"token": change_token.token()})).status_code == 204
    # The welcome link was for the old address: spent by the change's link, refused.
    assert_error_body(
        await shop.http.post(VERIFY, json={"token": welcome_token}), 401, "UNAUTHORIZED"
    )


async def test_a_password_change_sends_a_notice(shop: Shop) -> None:
    account = await signed_up(shop.http)
    response = await shop.http.patch(
        ME,
        json={"password": "changed-pass-1", "current_password": account.password},
        headers=account.headers,
    )
    assert response.status_code == 200
    notice = shop.only(account.email, "Your Keel password was changed")
    assert "signed out" not in notice.text  # this device stays signed in
    assert notice.links() == [f"{PUBLIC}/forgot-password"]
