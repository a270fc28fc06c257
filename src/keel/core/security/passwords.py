"""Password hashing with Argon2 (pwdlib), always off the event loop.

Argon2 is deliberately slow and memory-hard, so every hash and verify runs in a worker thread,
and at most one per CPU at a time: a burst of logins queues instead of exhausting memory.
Unknown users are checked against a dummy hash so a login takes about as long whether or not
the account exists.
"""

from __future__ import annotations

import os

import anyio
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from keel.core.config import CoreSettings


class PasswordHasher:
    def __init__(self, *, time_cost: int, memory_kib: int) -> None:
        self._hash = PasswordHash((Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib),))
        self._limiter = anyio.CapacityLimiter(max(os.cpu_count() or 1, 1))
        self._dummy_hash: str | None = None

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> PasswordHasher:
        return cls(
            time_cost=settings.password_hash_time_cost,
            memory_kib=settings.password_hash_memory_kib,
        )

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hash.hash, password, limiter=self._limiter)

    async def verify(self, password: str, stored_hash: str | None) -> tuple[bool, str | None]:
        """(valid, new hash if the stored one uses outdated parameters, else None).

        With no stored hash (unknown account) a dummy hash is verified instead, so the answer
        takes the same time and still fails.
        """
        if stored_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash("keel-timing-equaliser")
            await anyio.to_thread.run_sync(
                self._hash.verify, password, self._dummy_hash, limiter=self._limiter
            )
            return False, None
        return await anyio.to_thread.run_sync(
            self._hash.verify_and_update, password, stored_hash, limiter=self._limiter
        )
