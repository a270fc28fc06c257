"""The read cache (cashews): in memory by default, Redis when `KEEL_REDIS_URL` is set.

Entries are never deleted one by one. Each cached namespace has a version counter; keys embed
the current version, and a write bumps it after its transaction commits. Every process (and
host) sharing Redis then misses on its next read, so a read after a write is never stale, and
the old entries simply expire. With Redis unreachable every call degrades to a miss (the
backend swallows connection errors) and reads go to the database: slower, never a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cashews import Cache

from keel.core.config import CoreSettings
from keel.core.logging import get_logger
from keel.core.redis import retry_policy

log = get_logger(__name__)

DEFAULT_TTL_SECONDS = 300


class ReadCache:
    def __init__(
        self, cache: Cache, *, prefix: str, ttl_seconds: int = DEFAULT_TTL_SECONDS
    ) -> None:
        self._cache = cache
        self._prefix = prefix
        self._ttl = ttl_seconds

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> ReadCache:
        cache = Cache()
        if settings.redis_url is None:
            cache.setup("mem://?size=10000")
        else:
            cache.setup(
                settings.redis_url.get_secret_value(),
                suppress=True,  # an unreachable Redis reads as a miss, never an error
                socket_connect_timeout=0.5,
                socket_timeout=0.5,
                **retry_policy(),  # or the version bump after a Redis restart is lost
            )
        return cls(cache, prefix=settings.cache_key_prefix, ttl_seconds=settings.cache_ttl_seconds)

    def _version_key(self, namespace: str) -> str:
        return f"{self._prefix}:{namespace}:version"

    def _entry_key(self, namespace: str, version: int, key: str) -> str:
        return f"{self._prefix}:{namespace}:v{version}:{key}"

    async def version(self, namespace: str) -> int:
        """The namespace's current version. An entry is read and stored at the version read
        *before* its value was loaded: a write that commits meanwhile leaves it behind."""
        version: int = await self._cache.get(self._version_key(namespace), default=0)
        return version

    async def get(self, namespace: str, version: int, key: str) -> bytes | None:
        cached = await self._cache.get(self._entry_key(namespace, version, key))
        return cached if isinstance(cached, bytes) else None

    async def set(self, namespace: str, version: int, key: str, value: bytes) -> None:
        await self._cache.set(self._entry_key(namespace, version, key), value, expire=self._ttl)

    async def get_or_load(
        self, namespace: str, key: str, load: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The cached bytes for `key` in `namespace`, loading (and storing) them on a miss.

        Callers cache finished response bodies: a hit then costs no validation and no
        serialization, which is what makes the cache cheaper than the two queries it saves.
        """
        version = await self.version(namespace)
        cached = await self.get(namespace, version, key)
        if cached is not None:
            return cached
        value = await load()
        await self.set(namespace, version, key, value)
        return value

    async def invalidate(self, namespace: str) -> None:
        """Make every entry of `namespace` unreachable, in every process sharing the cache."""
        await self._cache.incr(self._version_key(namespace))

    async def close(self) -> None:
        await self._cache.close()
