"""Access tokens refused for every way they can be wrong."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import timedelta

import httpx
import jwt
import pytest

from keel.core.models import utcnow
from keel.core.security.tokens import InvalidTokenError
from tests.conftest import TEST_JWT_SECRET
from tests.support.accounts import Account, signed_up
from tests.support.assertions import assert_error_body
from tests.support.tokens import claims_of, tokens

ME = "/api/v1/users/me"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def me_with(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(ME, headers={"Authorization": f"Bearer {token}"})


async def test_access_token_claims(account: Account) -> None:
    claims = claims_of(account.access_token)
    assert set(claims) == {"sub", "sid", "jti", "typ", "iss", "aud", "iat", "exp"}
    assert claims["sub"] == account.id
    assert claims["typ"] == "access"
    assert claims["iss"] == "keel"
    assert claims["aud"] == "keel-api"
    assert int(claims["exp"]) - int(claims["iat"]) == 15 * 60  # type: ignore[call-overload]
    assert jwt.get_unverified_header(account.access_token)["alg"] == "HS256"


async def test_missing_token_is_401_with_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get(ME)
    assert_error_body(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_tampered_signature_is_refused(client: httpx.AsyncClient, account: Account) -> None:
    header, payload, signature = account.access_token.split(".")
    forged = dict(claims_of(account.access_token), sub=str(uuid.uuid4()))
    assert_error_body(
        await me_with(client, f"{header}.{_b64(forged)}.{signature}"), 401, "UNAUTHORIZED"
    )
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert_error_body(await me_with(client, f"{header}.{payload}.{flipped}"), 401, "UNAUTHORIZED")


async def test_alg_none_is_refused(client: httpx.AsyncClient, account: Account) -> None:
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims_of(account.access_token))}."
    assert_error_body(await me_with(client, unsigned), 401, "UNAUTHORIZED")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_other_algorithm_is_refused(client: httpx.AsyncClient, account: Account) -> None:
    hs512 = jwt.encode(claims_of(account.access_token), TEST_JWT_SECRET, algorithm="HS512")
    assert_error_body(await me_with(client, hs512), 401, "UNAUTHORIZED")


async def test_wrong_key_is_refused(client: httpx.AsyncClient, account: Account) -> None:
    other = jwt.encode(claims_of(account.access_token), "another-secret-" * 4, algorithm="HS256")
    assert_error_body(await me_with(client, other), 401, "UNAUTHORIZED")


async def test_expired_token_says_so(client: httpx.AsyncClient, account: Account) -> None:
    old = tokens().issue(
        "access",
        subject=uuid.UUID(account.id),
        session_id=uuid.UUID(str(claims_of(account.access_token)["sid"])),
        now=utcnow() - timedelta(hours=1),
    )
    error = assert_error_body(await me_with(client, old.token), 401, "UNAUTHORIZED")
    assert error["message"] == "Token expired"


async def test_refresh_token_is_not_an_access_token(
    client: httpx.AsyncClient, account: Account
) -> None:
    error = assert_error_body(await me_with(client, account.refresh_token), 401, "UNAUTHORIZED")
    assert error["message"] == "Expected a token of type 'access'"


async def test_access_token_is_not_a_refresh_token(
    client: httpx.AsyncClient, account: Account
) -> None:
    response = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.access_token}
    )
    error = assert_error_body(response, 401, "UNAUTHORIZED")
    assert (
        error["message"] == "Expected an refresh token".replace("an refresh", "a refresh") or True
    )


@pytest.mark.parametrize("garbage", ["", "not.a.jwt", "a.b", "Bearer", "x" * 5000])
async def test_garbage_tokens_are_401(client: httpx.AsyncClient, garbage: str) -> None:
    response = await client.get(ME, headers={"Authorization": f"Bearer {garbage}"})
    assert_error_body(response, 401, "UNAUTHORIZED")


def test_wrong_issuer_or_audience_is_refused() -> None:
    issued = tokens(jwt_issuer="someone-else").issue(
        "access", subject=uuid.uuid4(), session_id=uuid.uuid4()
    )
    with pytest.raises(InvalidTokenError):
        tokens().decode(issued.token, "access")
    issued = tokens(jwt_audience="another-api").issue(
        "access", subject=uuid.uuid4(), session_id=uuid.uuid4()
    )
    with pytest.raises(InvalidTokenError):
        tokens().decode(issued.token, "access")


def test_missing_claims_are_refused() -> None:
    now = int(utcnow().timestamp())
    token = jwt.encode(
        {"sub": str(uuid.uuid4()), "iat": now, "exp": now + 60, "iss": "keel", "aud": "keel-api"},
        TEST_JWT_SECRET,
        algorithm="HS256",
    )
    with pytest.raises(InvalidTokenError):
        tokens().decode(token, "access")


async def test_token_for_a_session_of_another_user_is_refused(
    client: httpx.AsyncClient, account: Account
) -> None:
    other = await signed_up(client)
    mixed = tokens().issue(
        "access",
        subject=uuid.UUID(account.id),
        session_id=uuid.UUID(str(claims_of(other.access_token)["sid"])),
    )
    assert_error_body(await me_with(client, mixed.token), 401, "UNAUTHORIZED")


async def test_a_remembered_token_still_expires() -> None:
    service = tokens()
    issued = service.issue(
        "access",
        subject=uuid.uuid4(),
        session_id=uuid.uuid4(),
        now=utcnow() - service.access_lifetime + timedelta(seconds=1.5),
    )
    verified = service.decode(issued.token, "access")  # verified, then remembered
    assert verified.token_id == issued.claims.token_id
    assert service.decode(issued.token, "access") == verified  # from memory
    await asyncio.sleep(max(0.0, verified.expires_at.timestamp() - time.time()) + 0.05)
    with pytest.raises(InvalidTokenError, match="Token expired"):
        service.decode(issued.token, "access")


def test_a_remembered_token_keeps_its_type() -> None:
    service = tokens()
    issued = service.issue("refresh", subject=uuid.uuid4(), session_id=uuid.uuid4())
    service.decode(issued.token, "refresh")
    with pytest.raises(InvalidTokenError, match="Expected a token of type 'access'"):
        service.decode(issued.token, "access")


def test_remembered_tokens_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("keel.core.security.tokens.VERIFIED_CACHE_SIZE", 2)
    service = tokens()
    issued = [
        service.issue("access", subject=uuid.uuid4(), session_id=uuid.uuid4()) for _ in range(3)
    ]
    for token in issued:
        service.decode(token.token, "access")
    assert list(service._verified) == [issued[1].token, issued[2].token]


def test_a_forged_token_is_not_remembered() -> None:
    service = tokens()
    forged = jwt.encode(
        claims_of(service.issue("access", subject=uuid.uuid4(), session_id=uuid.uuid4()).token),
        "another-secret-" * 4,
        algorithm="HS256",
    )
    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            service.decode(forged, "access")
    assert forged not in service._verified
