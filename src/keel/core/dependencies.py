"""Dependency aliases for what the lifespan provides, so endpoint signatures stay short."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import HTTPConnection

from keel.core.config import Settings
from keel.core.database import DbSession, get_database
from keel.core.email import EmailSender
from keel.core.ratelimit import Limit, RateLimiter, client_address
from keel.core.security.passwords import PasswordHasher
from keel.core.security.tokens import TokenService

__all__ = [
    "AppSettings",
    "DbSession",
    "Hasher",
    "Limiter",
    "Mailer",
    "Tokens",
    "get_database",
    "rate_limit",
]


def get_app_settings(connection: HTTPConnection) -> Settings:
    settings: Settings = connection.state.settings
    return settings


def get_password_hasher(connection: HTTPConnection) -> PasswordHasher:
    hasher: PasswordHasher = connection.state.password_hasher
    return hasher


def get_token_service(connection: HTTPConnection) -> TokenService:
    tokens: TokenService = connection.state.token_service
    return tokens


def get_rate_limiter(connection: HTTPConnection) -> RateLimiter:
    limiter: RateLimiter = connection.state.rate_limiter
    return limiter


def get_email_sender(connection: HTTPConnection) -> EmailSender:
    sender: EmailSender = connection.state.email_sender
    return sender


AppSettings = Annotated[Settings, Depends(get_app_settings)]
Hasher = Annotated[PasswordHasher, Depends(get_password_hasher)]
Tokens = Annotated[TokenService, Depends(get_token_service)]
Limiter = Annotated[RateLimiter, Depends(get_rate_limiter)]
Mailer = Annotated[EmailSender, Depends(get_email_sender)]


def rate_limit(limit: Limit) -> Callable[[HTTPConnection, RateLimiter], Coroutine[Any, Any, None]]:
    """A route dependency counting each call against `limit`, keyed by the client's address."""

    async def hit(connection: HTTPConnection, limiter: Limiter) -> None:
        await limiter.hit(limit, client_address(connection.scope))

    return hit
