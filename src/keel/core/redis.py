"""The shared Redis client, when `KEEL_REDIS_URL` is set (production scale-out).

One connection pool per process, opened in the lifespan; features reach it through
the lifespan state. Timeouts are short so a Redis outage degrades a request instead of hanging it.
"""

from __future__ import annotations

from redis.asyncio import Redis

from keel.core.config import Settings

SOCKET_TIMEOUT_SECONDS = 2.0


def build_redis(settings: Settings) -> Redis | None:
    if settings.redis_url is None:
        return None
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
        retry_on_timeout=False,
    )


async def ping(redis: Redis) -> None:
    await redis.ping()
