"""The shared Redis client, when `KEEL_REDIS_URL` is set (production scale-out).

One connection pool per process, opened in the lifespan; features reach it through
the lifespan state. Timeouts are short so a Redis outage degrades a request instead of hanging it.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from keel.core.config import CoreSettings

SOCKET_TIMEOUT_SECONDS = 2.0


def retry_policy() -> dict[str, Any]:
    """Retry a command twice, quickly, on a broken connection: after Redis restarts (or a proxy
    drops idle connections) every pooled connection is dead, and without this each one
    fails one command before the pool replaces it."""
    return {
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        "retry_on_error": [RedisConnectionError],
    }


def build_redis(settings: CoreSettings) -> Redis | None:
    if settings.redis_url is None:
        return None
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
        retry_on_timeout=False,
        **retry_policy(),
    )


async def ping(redis: Redis) -> None:
    await redis.ping()
