"""Rate limits: 429 with Retry-After, shared through Redis, and the fail-open/closed policy."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.core.errors import RateLimitedError
from keel.core.ratelimit import Limit, RateLimiter
from keel.main import create_app
from tests.conftest import MakeSettings
from tests.support.accounts import register
from tests.support.app import isolated_app, serve
from tests.support.assertions import assert_error_body
from tests.support.databases import REDIS_URL
from tests.support.network import closed_port

LOGIN = "/api/v1/auth/login"


async def test_brute_force_on_one_account_reaches_429(
    make_settings: MakeSettings, db_connection: AsyncConnection
) -> None:
    application = isolated_app(make_settings(rate_limit_login_account="3/minute"), db_connection)
    async with serve(application) as http:
        user, password = await register(http)
        attempts = [
            await http.post(LOGIN, json={"email": user["email"], "password": "wrong-guess"})
            for _ in range(3)
        ]
        blocked = await http.post(LOGIN, json={"email": user["email"], "password": password})
        other = await http.post(LOGIN, json={"email": "other@example.com", "password": "x"})
    assert [a.status_code for a in attempts] == [401, 401, 401]
    error = assert_error_body(blocked, 429, "RATE_LIMITED")
    assert error["details"] == {"limit": "login_account"}
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    assert other.status_code == 401  # the limit is per account


async def test_successful_logins_do_not_count_against_the_account(
    make_settings: MakeSettings, db_connection: AsyncConnection
) -> None:
    """The per-account limit is against guessing: a client that logs in often is not."""
    application = isolated_app(make_settings(rate_limit_login_account="3/minute"), db_connection)
    async with serve(application) as http:
        user, password = await register(http)
        right = {"email": user["email"], "password": password}
        successes = [(await http.post(LOGIN, json=right)).status_code for _ in range(6)]
        wrong = {"email": user["email"], "password": "wrong-guess"}
        failures = [(await http.post(LOGIN, json=wrong)).status_code for _ in range(4)]
        after = await http.post(LOGIN, json=right)
    assert successes == [200] * 6
    assert failures == [401, 401, 401, 429]
    assert_error_body(after, 429, "RATE_LIMITED")  # the guesser cannot tell a right guess


async def test_login_is_limited_per_ip_across_accounts(make_settings: MakeSettings) -> None:
    async with serve(create_app(make_settings(rate_limit_login_ip="2/minute"))) as http:
        statuses = [
            (
                await http.post(LOGIN, json={"email": f"u{i}@example.com", "password": "x"})
            ).status_code
            for i in range(3)
        ]
    assert statuses == [401, 401, 429]


async def test_register_is_limited_per_ip(
    make_settings: MakeSettings, db_connection: AsyncConnection
) -> None:
    application = isolated_app(make_settings(rate_limit_register_ip="1/minute"), db_connection)
    async with serve(application) as http:
        await register(http)
        second = await http.post(
            "/api/v1/auth/register",
            json={"email": "second@example.com", "password": "longenough1", "full_name": "S"},
        )
    assert_error_body(second, 429, "RATE_LIMITED")


async def test_refresh_is_limited_per_ip(make_settings: MakeSettings) -> None:
    async with serve(create_app(make_settings(rate_limit_refresh_ip="1/minute"))) as http:
        first = await http.post("/api/v1/auth/refresh", json={"refresh_token": "a.b.c"})
        second = await http.post("/api/v1/auth/refresh", json={"refresh_token": "a.b.c"})
    assert first.status_code == 401
    assert_error_body(second, 429, "RATE_LIMITED")


async def test_global_default_limit_spares_the_probes(make_settings: MakeSettings) -> None:
    async with serve(create_app(make_settings(rate_limit_default="2/minute"))) as http:
        api = [(await http.get("/api/v1/users/me")).status_code for _ in range(3)]
        probes = [(await http.get("/health")).status_code for _ in range(5)]
    assert api == [401, 401, 429]
    assert probes == [200] * 5


async def test_limits_can_be_switched_off(make_settings: MakeSettings) -> None:
    settings = make_settings(rate_limit_default="1/minute", rate_limit_enabled=False)
    async with serve(create_app(settings)) as http:
        statuses = {(await http.get("/api/v1/users/me")).status_code for _ in range(3)}
    assert statuses == {401}


def test_malformed_limit_is_a_configuration_error(make_settings: MakeSettings) -> None:
    from keel.core.errors import ConfigError

    with pytest.raises(ConfigError, match="KEEL_RATE_LIMIT_LOGIN_IP"):
        make_settings(rate_limit_login_ip="lots")


async def test_unreachable_redis_fails_open_globally_and_closed_for_auth(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    async with serve(create_app(settings)) as http:
        api = await http.get("/api/v1/users/me")
        login = await http.post(LOGIN, json={"email": "a@example.com", "password": "whatever1"})
    assert_error_body(api, 401, "UNAUTHORIZED")  # let through: the global limit fails open
    assert_error_body(login, 503, "SERVICE_UNAVAILABLE")  # auth fails closed
    assert login.headers["retry-after"].isdigit()


@pytest.mark.skipif(not REDIS_URL, reason="needs KEEL_TEST_REDIS_URL")
async def test_two_app_instances_share_a_limit_over_redis(make_settings: MakeSettings) -> None:
    settings = make_settings(
        redis_url=REDIS_URL,
        rate_limit_login_ip="3/minute",
        rate_limit_key_prefix=f"keel-test-{uuid.uuid4().hex}",
    )
    async with serve(create_app(settings)) as first, serve(create_app(settings)) as second:
        statuses = [
            (await http.post(LOGIN, json={"email": "x@example.com", "password": "y"})).status_code
            for http in (first, second, first, second)
        ]
    assert statuses == [401, 401, 401, 429]


async def sleep_until_fraction_of_second(fraction: float) -> None:
    """Until the clock's fraction of a second is `fraction` (in this second or the next)."""
    await asyncio.sleep((fraction - time.time()) % 1)


@pytest.mark.parametrize("storage", ["memory", "redis"])
async def test_an_account_limit_holds_across_a_window_edge(
    make_settings: MakeSettings, storage: str
) -> None:
    """One a second, hit just before a second's edge and again just after it: a sliding-window
    counter lets the second through (it rounds the previous window's weighted count down),
    the exact moving window used for every account limit refuses it."""
    if storage == "redis" and not REDIS_URL:
        pytest.skip("needs KEEL_TEST_REDIS_URL")
    settings = make_settings(
        rate_limit_verify_resend_account="1/second",
        rate_limit_key_prefix=f"keel-test-{uuid.uuid4().hex}",
    )
    redis = Redis.from_url(REDIS_URL) if storage == "redis" and REDIS_URL else None
    try:
        limiter = RateLimiter.from_settings(settings, redis)
        await sleep_until_fraction_of_second(0.9)
        await limiter.hit(Limit.VERIFY_RESEND_ACCOUNT, "account")
        await sleep_until_fraction_of_second(0.02)
        with pytest.raises(RateLimitedError):
            await limiter.hit(Limit.VERIFY_RESEND_ACCOUNT, "account")
        await limiter.hit(Limit.VERIFY_RESEND_ACCOUNT, "another account")  # its own count
    finally:
        if redis is not None:
            await redis.aclose()
