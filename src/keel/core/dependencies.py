"""Dependency aliases for what the lifespan provides, so endpoint signatures stay short."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import Depends
from starlette.requests import HTTPConnection

from keel.core.cache import ReadCache
from keel.core.config import CoreSettings, settings_as
from keel.core.database import Database, DbSession, get_database
from keel.core.email import EmailSender
from keel.core.events import EventHub
from keel.core.jobs.queue import JobQueue
from keel.core.ratelimit import Limit, RateLimiter, client_address
from keel.core.reads import DbReads
from keel.core.security.passwords import PasswordHasher
from keel.core.security.tokens import TokenService
from keel.core.state import from_state
from keel.core.storage import Storage

__all__ = [
    "AppDatabase",
    "AppSettings",
    "Cache",
    "DbReads",
    "DbSession",
    "Events",
    "Hasher",
    "Jobs",
    "Limiter",
    "Mailer",
    "Store",
    "Tokens",
    "get_database",
    "rate_limit",
    "settings_of",
]

S = TypeVar("S", bound=CoreSettings)


def settings_of(kind: type[S]) -> Callable[[HTTPConnection], Coroutine[Any, Any, S]]:
    """A dependency returning the app's settings as `kind`, a feature's settings class
    (checked by `settings_as`): how a feature's route reads its own fields."""

    async def get(connection: HTTPConnection) -> S:
        return settings_as(kind, connection.state.settings)

    get.__name__ = f"get_{kind.__name__}"
    return get


AppDatabase = Annotated[Database, Depends(get_database)]
"""The database itself, for work after the response (a background task opens its own
transaction: the request's session is closed by then)."""
AppSettings = Annotated[CoreSettings, Depends(settings_of(CoreSettings))]
Hasher = Annotated[PasswordHasher, Depends(from_state("password_hasher", PasswordHasher))]
Tokens = Annotated[TokenService, Depends(from_state("token_service", TokenService))]
Limiter = Annotated[RateLimiter, Depends(from_state("rate_limiter", RateLimiter))]
Cache = Annotated[ReadCache, Depends(from_state("read_cache", ReadCache))]
Events = Annotated[EventHub, Depends(from_state("event_hub", EventHub))]
Mailer = Annotated[EmailSender, Depends(from_state("email_sender", EmailSender))]
Jobs = Annotated[JobQueue, Depends(from_state("jobs", JobQueue))]
Store = Annotated[Storage, Depends(from_state("storage", Storage))]


def rate_limit(limit: Limit) -> Callable[[HTTPConnection, RateLimiter], Coroutine[Any, Any, None]]:
    """A route dependency counting each call against `limit`, keyed by the client's address."""

    async def hit(connection: HTTPConnection, limiter: Limiter) -> None:
        await limiter.hit(limit, client_address(connection.scope))

    return hit
