"""Rate limits on the `limits` library: in memory by default, Redis when configured.

With Redis every process and host shares the counters, so a limit holds across the whole
deployment. When Redis cannot be reached the policy depends on what is at stake: the global
per-client limit fails open (the API stays up; the outage is logged), the auth limits fail
closed with a 503 (an attacker must not get unlimited password guesses during an outage).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Mapping
from enum import StrEnum

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from limits.aio.strategies import RateLimiter as Strategy
from limits.errors import StorageError
from redis.asyncio import Redis
from starlette.types import ASGIApp, Receive, Scope, Send

from keel.core.config import CoreSettings
from keel.core.errors import RateLimitedError, ServiceUnavailableError
from keel.core.exception_handlers import error_response
from keel.core.logging import get_logger
from keel.core.operations import OPERATIONS_PATHS

log = get_logger(__name__)


class Limit(StrEnum):
    DEFAULT = "default"
    LOGIN_IP = "login_ip"
    LOGIN_ACCOUNT = "login_account"
    REGISTER_IP = "register_ip"
    REFRESH_IP = "refresh_ip"
    PASSWORD_RESET_IP = "password_reset_ip"  # noqa: S105 - a name, not a secret
    PASSWORD_RESET_ACCOUNT = "password_reset_account"  # noqa: S105 - a name, not a secret
    ACCOUNT_TOKEN_IP = "account_token_ip"  # noqa: S105 - a name, not a secret
    VERIFY_RESEND_ACCOUNT = "verify_resend_account"


FAIL_OPEN = frozenset({Limit.DEFAULT})
"""Limits that let traffic through when the counter store is down; all others refuse."""

APPROXIMATE = frozenset({Limit.DEFAULT})
"""Limits counted in sliding-window counters: O(1) per hit whatever the limit, where a moving
window keeps one entry per request in the window (300 a minute per client by default, far
more where a deployment raises it). The counter weighs the previous window's count by the
part of it still in range and rounds down, so right after a window edge it lets one request
more through than the limit: harmless at 300 a minute, double at 1 a minute. Every other
limit is small and guards an account or a password, so it is counted exactly, in a moving
window."""


class RateLimiter:
    def __init__(
        self, storage: Storage, limits: Mapping[Limit, str], *, enabled: bool = True
    ) -> None:
        self.storage = storage
        self.enabled = enabled
        counter, exact = SlidingWindowCounterRateLimiter(storage), MovingWindowRateLimiter(storage)
        self._strategies: Mapping[Limit, Strategy] = {
            limit: counter if limit in APPROXIMATE else exact for limit in Limit
        }
        self._items: Mapping[Limit, RateLimitItem] = {
            limit: parse(limits[limit]) for limit in Limit
        }

    @classmethod
    def from_settings(cls, settings: CoreSettings, redis: Redis | None) -> RateLimiter:
        storage: Storage
        if redis is None:
            storage = MemoryStorage()
        else:
            storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                key_prefix=settings.rate_limit_key_prefix,
                wrap_exceptions=True,
                # limits types its options as scalars; they go straight to the redis client.
                connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            )
        # Each limit has its setting: Limit.LOGIN_IP <- KEEL_RATE_LIMIT_LOGIN_IP, and so on.
        limits = {limit: getattr(settings, f"rate_limit_{limit.value}") for limit in Limit}
        return cls(storage, limits, enabled=settings.rate_limit_enabled)

    async def hit(self, limit: Limit, key: str) -> None:
        """Count one request for `key`; raise 429 (or 503 when failing closed) if over."""
        await self._apply(limit, key, count=True)

    async def check(self, limit: Limit, key: str) -> None:
        """Raise as `hit` would, without counting: for limits that count only some outcomes
        (failed logins), checked before the attempt and hit once it has failed."""
        await self._apply(limit, key, count=False)

    async def _apply(self, limit: Limit, key: str, *, count: bool) -> None:
        if not self.enabled:
            return
        item, strategy = self._items[limit], self._strategies[limit]
        try:
            if count:
                allowed = await strategy.hit(item, limit.value, key)
            else:
                allowed = await strategy.test(item, limit.value, key)
            if allowed:
                return
            stats = await strategy.get_window_stats(item, limit.value, key)
        except (StorageError, ConnectionError, TimeoutError, OSError) as exc:
            fail_open = limit in FAIL_OPEN
            log.error(
                "rate_limit_store_unavailable",
                limit=limit.value,
                policy="open" if fail_open else "closed",
                error_type=type(exc).__name__,
            )
            if fail_open:
                return
            raise ServiceUnavailableError(
                "Rate limiting is unavailable; try again shortly"
            ) from None
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimitedError(
            "Too many requests", retry_after=retry_after, details={"limit": limit.value}
        )


def client_address(scope: Scope) -> str:
    """The client's IP as the server saw it (after trusted proxy headers), or 'unknown'."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class DefaultRateLimitMiddleware:
    """The global per-client limit on every HTTP request except probes and scrapes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Steps aside without a frame of its own (core/middleware/__init__.py)."""
        limiter: RateLimiter | None = scope.get("state", {}).get("rate_limiter")
        if scope["type"] != "http" or limiter is None or scope["path"] in OPERATIONS_PATHS:
            return self.app(scope, receive, send)
        return self._limit(limiter, scope, receive, send)

    async def _limit(
        self, limiter: RateLimiter, scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            await limiter.hit(Limit.DEFAULT, client_address(scope))
        except RateLimitedError as refused:
            await error_response(refused)(scope, receive, send)
            return
        await self.app(scope, receive, send)
