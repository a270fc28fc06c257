"""JWT access and refresh tokens (PyJWT, HS256 pinned on decode).

Both kinds carry `sub`, `exp`, `iat`, `jti`, `iss`, `aud` and `typ`. `typ` keeps one kind from
being accepted as the other; `sid` names the login session (refresh-token family) both belong
to, so revoking a session kills its access tokens at once, not only when they expire.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import jwt

from keel.core.config import CoreSettings
from keel.core.errors import UnauthorizedError
from keel.core.models import utcnow

ALGORITHM = "HS256"
ONE_TIME_TOKEN_BYTES = 32
TokenType = Literal["access", "refresh"]
REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "iss", "aud", "typ", "sid"]
VERIFIED_CACHE_SIZE = 4096
"""How many verified tokens a process remembers (a few hundred bytes each)."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: uuid.UUID
    session_id: uuid.UUID
    token_id: uuid.UUID
    token_type: TokenType
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    claims: TokenClaims


class InvalidTokenError(UnauthorizedError):
    default_message = "Invalid or expired token"


class TokenService:
    def __init__(self, settings: CoreSettings) -> None:
        assert settings.jwt_secret is not None  # load_settings guarantees one
        self._secret = settings.jwt_secret.get_secret_value()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.access_lifetime = timedelta(minutes=settings.access_token_minutes)
        self.refresh_lifetime = timedelta(days=settings.refresh_token_days)
        # token -> its claims and `exp`, for tokens that passed `decode` (see there).
        self._verified: dict[str, tuple[TokenClaims, float]] = {}

    def issue(
        self,
        token_type: TokenType,
        *,
        subject: uuid.UUID,
        session_id: uuid.UUID,
        now: datetime | None = None,
    ) -> IssuedToken:
        issued_at = now or utcnow()
        refreshing = token_type == "refresh"  # noqa: S105 - a token kind, not a secret
        lifetime = self.refresh_lifetime if refreshing else self.access_lifetime
        claims = TokenClaims(
            subject=subject,
            session_id=session_id,
            token_id=uuid.uuid4(),
            token_type=token_type,
            expires_at=issued_at + lifetime,
        )
        payload = {
            "sub": str(subject),
            "sid": str(session_id),
            "jti": str(claims.token_id),
            "typ": token_type,
            "iss": self._issuer,
            "aud": self._audience,
            "iat": int(issued_at.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        }
        return IssuedToken(jwt.encode(payload, self._secret, algorithm=ALGORITHM), claims)

    def one_time(self) -> str:
        """A random token for a link sent by email (password reset, verification): opaque,
        256 bits, URL-safe. Only its hash is stored; it is never logged."""
        return secrets.token_urlsafe(ONE_TIME_TOKEN_BYTES)

    def decode(self, token: str, expected_type: TokenType) -> TokenClaims:
        """Verify signature, algorithm, expiry, issuer, audience and type; 401 otherwise.

        A token that passed once is remembered with its claims until it expires: its
        signature, issuer and audience cannot change, and its expiry is checked again on
        every use. A client sends the same access token on every request, and PyJWT's
        checks (2.15's base64 alphabet scan, the key preparation) are about 60 µs of a
        request that costs a few hundred (bench/README.md). Revocation is not a property of
        the token: the session lookup after this still decides it, on every request."""
        remembered = self._verified.get(token)
        if remembered is not None and time.time() < remembered[1]:
            claims = remembered[0]
        else:
            claims, expires = self._verify(token)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[token] = (claims, expires)
        if claims.token_type != expected_type:
            raise InvalidTokenError(f"Expected a token of type {expected_type!r}")
        return claims

    def _verify(self, token: str) -> tuple[TokenClaims, float]:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS},
            )
            claims = TokenClaims(
                subject=_uuid(payload["sub"]),
                session_id=_uuid(payload["sid"]),
                token_id=_uuid(payload["jti"]),
                token_type=payload["typ"],
                expires_at=datetime.fromtimestamp(payload["exp"], tz=utcnow().tzinfo),
            )
            # PyJWT accepts `exp` as an int or a float; the cache compares as it does.
            return claims, float(payload["exp"])
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("Token expired") from None
        # OverflowError and OSError: an `exp` beyond what a datetime holds (2**63, 1e308).
        except (jwt.InvalidTokenError, ValueError, TypeError, KeyError, OverflowError, OSError):
            raise InvalidTokenError() from None


def _uuid(claim: object) -> uuid.UUID:
    """A UUID claim; anything but its text (a number, a list, null) is as invalid as bad text
    (`uuid.UUID` would raise AttributeError on those, which nothing here expects)."""
    if not isinstance(claim, str):
        raise ValueError("a UUID claim must be a string")
    return uuid.UUID(claim)
