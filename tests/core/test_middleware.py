"""The pure-ASGI middleware stack: security headers, hosts, CORS, gzip, body limit, access log."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.core.middleware.body_limit import (
    BodySizeLimitMiddleware,
    UploadLimit,
    UploadRouter,
    upload_prefixes,
)
from keel.core.middleware.gzip import GZipMiddleware
from keel.core.middleware.trusted_hosts import TrustedHostMiddleware
from keel.core.ratelimit import DefaultRateLimitMiddleware
from keel.main import create_app
from tests.conftest import MakeSettings
from tests.support import routes
from tests.support.app import isolate_sessions, serve
from tests.support.assertions import assert_error_body


async def build_client(
    make_settings: MakeSettings, connection: AsyncConnection, **overrides: object
) -> tuple[FastAPI, MakeSettings]:
    application = create_app(make_settings(**overrides))
    application.include_router(routes.router)
    isolate_sessions(application, connection)
    return application, make_settings


async def test_api_gets_strict_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert "strict-transport-security" not in response.headers  # plain HTTP


async def test_hsts_only_over_https(app: FastAPI) -> None:
    async with serve(app, base_url="https://testserver") as http:
        response = await http.get("/health")
    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_docs_csp_allows_own_scripts_only(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "cdn" not in response.text.lower()
    assert "<script>" not in response.text  # no inline script anywhere on the page


async def test_swagger_assets_are_served_locally(client: httpx.AsyncClient) -> None:
    bundle = await client.get("/static/swagger/swagger-ui-bundle.js")
    init = await client.get("/static/keel/swagger-init.js")
    assert bundle.status_code == 200
    assert "SwaggerUIBundle" in bundle.text[:2000]
    assert init.status_code == 200
    assert "openapiUrl" in init.text


async def test_gzip_above_one_kib(client: httpx.AsyncClient) -> None:
    big = await client.get("/_test/large", headers={"Accept-Encoding": "gzip"})
    small = await client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip"
    assert big.json()["data"] == "x" * 5000  # httpx decodes transparently
    assert "content-encoding" not in small.headers


async def test_declared_oversized_body_is_413_before_reading(
    client: httpx.AsyncClient,
) -> None:
    body = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    response = await client.post(
        "/_test/echo", content=body, headers={"content-type": "application/json"}
    )
    error = assert_error_body(response, 413, "PAYLOAD_TOO_LARGE")
    assert error["details"] == {"max_bytes": 1024 * 1024}


async def test_streamed_body_is_cut_off_at_the_limit(client: httpx.AsyncClient) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):
            sent += 64 * 1024
            yield b" " * (64 * 1024)

    response = await client.post(
        "/_test/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error_body(response, 413, "PAYLOAD_TOO_LARGE")


async def test_small_body_passes_the_limit(client: httpx.AsyncClient) -> None:
    response = await client.post("/_test/echo", json={"name": "a", "count": 1})
    assert response.status_code == 200
    assert response.json() == {"name": "a", "count": 1}


async def test_only_an_upload_routers_prefix_gets_the_upload_limit() -> None:
    """A feature declares its larger limit by building an `UploadRouter`; core names no URL."""
    uploads, plain = UploadRouter(prefix="/uploads"), APIRouter(prefix="/plain")
    app = FastAPI()
    for router in (uploads, plain):

        @router.post("")
        async def receive(request: Request) -> dict[str, int]:
            return {"size": len(await request.body())}

        app.include_router(router, prefix="/v9")
    prefixes = upload_prefixes("/v9", (plain, uploads))
    assert prefixes == ("/v9/uploads",)
    limited = BodySizeLimitMiddleware(
        app, max_bytes=1024, overrides=dict.fromkeys(prefixes, UploadLimit(4096, 512))
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=limited), base_url="http://testserver"
    ) as http:
        accepted = await http.post("/v9/uploads", content=b"x" * 2048)
        refused = await http.post("/v9/plain", content=b"x" * 2048)
        too_big = await http.post("/v9/uploads", content=b"x" * (4096 + 513))
    assert accepted.json() == {"size": 2048}
    assert (refused.status_code, too_big.status_code) == (413, 413)
    assert refused.json()["error"]["message"] == "Request body exceeds 1024 bytes"
    # The file limit, not the limit plus the envelope room enforced on top of it.
    assert too_big.json()["error"]["message"] == "The file exceeds 4096 bytes"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("api.example.com", True),
        ("api.example.com:8443", True),
        ("eu.shop.example.com", True),
        ("evil.com", False),
        ("example.com.evil.com", False),
    ],
)
async def test_trusted_hosts(
    make_settings: MakeSettings, db_connection: AsyncConnection, host: str, allowed: bool
) -> None:
    application, _ = await build_client(
        make_settings, db_connection, allowed_hosts="api.example.com,*.shop.example.com"
    )
    async with serve(application) as http:
        response = await http.get("/api/v1/nothing-here", headers={"host": host})
        probe = await http.get("/health", headers={"host": host})
    assert probe.status_code == 200  # probes come by pod address, whatever the host
    if allowed:
        assert_error_body(response, 404, "NOT_FOUND")  # past the host check
    else:
        error = assert_error_body(response, 400, "BAD_REQUEST")
        assert error["message"] == "Invalid host header"


async def test_cors_preflight_for_allowed_origin(
    make_settings: MakeSettings, db_connection: AsyncConnection
) -> None:
    application, _ = await build_client(
        make_settings, db_connection, cors_origins="https://shop.example.com"
    )
    async with serve(application) as http:
        allowed = await http.options(
            "/health",
            headers={
                "Origin": "https://shop.example.com",
                "Access-Control-Request-Method": "GET",
            },
        )
        simple = await http.get("/health", headers={"Origin": "https://evil.example.com"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example.com"
    assert "access-control-allow-origin" not in simple.headers


async def test_no_cors_headers_when_no_origins_configured(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"Origin": "https://shop.example.com"})
    assert "access-control-allow-origin" not in response.headers


async def test_access_log_line_per_request(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/_test/conflict")
    lines = [
        r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "request"
    ]
    assert len(lines) == 1
    line = lines[0]
    assert line["method"] == "GET"
    assert line["route"] == "/_test/conflict"
    assert line["status"] == 409
    assert line["duration_ms"] >= 0
    assert line["request_id"] == response.headers["x-request-id"]


async def test_access_log_uses_template_not_raw_path(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await client.get("/static/keel/swagger-init.js")
    await client.get("/unknown/42")
    routes_logged = [
        r.msg["route"]
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "request"
    ]
    assert "/unknown/42" not in routes_logged
    assert "<unmatched>" in routes_logged


async def test_gzip_response_decodes(client: httpx.AsyncClient) -> None:
    raw = await client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert gzip.compress(b"x")  # the module is the one the middleware uses
    assert raw.json()["openapi"].startswith("3.")


class _Inner:
    """An ASGI app that records nothing and returns one known awaitable."""

    def __init__(self) -> None:
        self.result = asyncio.sleep(0)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return self.result


def _websocket_scope() -> Scope:
    return {
        "type": "websocket",
        "path": "/api/v1/ws",
        "headers": [(b"host", b"testserver")],
        "state": {"rate_limiter": object()},
    }


@pytest.mark.parametrize(
    "wrap",
    [
        lambda app: GZipMiddleware(app),
        lambda app: BodySizeLimitMiddleware(app, max_bytes=1024),
        lambda app: DefaultRateLimitMiddleware(app),
        lambda app: TrustedHostMiddleware(app, allowed_hosts=["testserver"]),
    ],
    ids=["gzip", "body limit", "rate limit", "trusted hosts"],
)
async def test_a_websocket_is_handed_on_without_a_frame_of_the_layers_own(
    wrap: Callable[[ASGIApp], ASGIApp],
) -> None:
    """Each layer returns the next app's own awaitable for a WebSocket (nothing to do for it),
    so no coroutine of the layer stays alive for as long as the socket is open."""
    inner = _Inner()
    returned = wrap(inner)(_websocket_scope(), _no_receive, _no_send)
    assert returned is inner.result
    await inner.result


async def test_a_foreign_host_on_a_websocket_is_still_refused() -> None:
    inner = _Inner()
    scope = {**_websocket_scope(), "headers": [(b"host", b"evil.example")]}
    returned = TrustedHostMiddleware(inner, allowed_hosts=["testserver"])(
        scope, _no_receive, _no_send
    )
    assert returned is not inner.result
    await inner.result
    if asyncio.iscoroutine(returned):
        returned.close()


async def _no_receive() -> Message:
    raise AssertionError("nothing is read")


async def _no_send(message: Message) -> None:
    raise AssertionError("nothing is sent")
