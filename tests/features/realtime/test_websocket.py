"""WebSocket notifications against a real uvicorn on loopback, with a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
import websockets
from pydantic import SecretStr
from websockets.extensions.permessage_deflate import PerMessageDeflate

from keel.core.errors import ConfigError
from keel.core.models import utcnow
from keel.core.security.tokens import TokenService
from keel.core.serving import PROTOCOL, websocket_server_options
from keel.main import create_app
from keel.settings import Settings, load_settings
from tests.support import routes
from tests.support.accounts import Account, login, signed_up
from tests.support.databases import REDIS_URL
from tests.support.jobs import live_admin
from tests.support.servers import uvicorn_server

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")

Socket = websockets.ClientConnection


@contextmanager
def served(settings: Settings, **config: Any) -> Iterator[str]:
    application = create_app(settings)
    application.include_router(routes.router)
    with uvicorn_server(application, lifespan="on", **config) as base:
        yield base


@pytest.fixture
def ws_settings(live_settings: Settings) -> Settings:
    return live_settings.model_copy(update={"ws_heartbeat_seconds": 30})


@asynccontextmanager
async def connected(
    base: str, query: str = "", *, compression: str | None = "deflate"
) -> AsyncIterator[Socket]:
    """A client that offers permessage-deflate (as browsers do) unless `compression=None`."""
    url = base.replace("http", "ws", 1) + "/api/v1/ws" + query
    async with websockets.connect(url, compression=compression) as ws:
        yield ws


@contextmanager
def served_as_keel_serves(settings: Settings) -> Iterator[str]:
    """The app under the WebSocket options `keel serve` derives from the settings."""
    with served(settings, **websocket_server_options(settings)) as base:
        yield base


def negotiated(ws: Socket) -> tuple[list[str], str | None]:
    extensions = [type(extension).__name__ for extension in ws.protocol.extensions]
    assert ws.response is not None
    return extensions, ws.response.headers.get("Sec-WebSocket-Extensions")


async def receive(ws: Socket, within: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        message: dict[str, Any] = json.loads(await ws.recv())
    return message


async def closed_with(ws: Socket, within: float = 5.0) -> tuple[int, str]:
    """Wait until the server closes; return its close code and reason."""
    async with asyncio.timeout(within):
        await ws.wait_closed()
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


async def publish(http: httpx.AsyncClient, user_id: str | None, kind: str = "order.paid") -> str:
    event_id = str(uuid.uuid4())
    response = await http.post(
        "/_test/publish",
        json={"type": kind, "id": event_id, "user_id": user_id, "data": {"n": 1}},
    )
    assert response.status_code == 202
    return event_id


async def test_a_user_receives_their_own_events_and_no_one_elses(ws_settings: Settings) -> None:
    with served(ws_settings) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            alice = await signed_up(http)
            bob = await signed_up(http)
            async with connected(base, f"?token={alice.access_token}") as ws:
                assert await receive(ws) == {"type": "subscribed", "scope": "own"}
                await publish(http, bob.id)
                mine = await publish(http, alice.id)
                message = await receive(ws)
            rest_stamp = (await http.get("/api/v1/users/me", headers=alice.headers)).json()
    assert message["id"] == mine  # bob's event never arrived
    assert set(message) == {"type", "id", "at", "data"}
    # One timestamp format on every channel: the REST API's, ending in Z (was +00:00 here).
    assert TIMESTAMP.fullmatch(rest_stamp["created_at"]), rest_stamp
    assert TIMESTAMP.fullmatch(message["at"]), message
    assert message["type"] == "order.paid"
    assert message["data"] == {"n": 1}


async def test_the_token_may_come_in_the_first_message(ws_settings: Settings) -> None:
    with served(ws_settings) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            alice = await signed_up(http)
            async with connected(base) as ws:
                await ws.send(json.dumps({"type": "auth", "token": alice.access_token}))
                assert (await receive(ws))["type"] == "subscribed"
                event_id = await publish(http, alice.id, "job.finished")
                assert (await receive(ws))["id"] == event_id


async def test_admins_may_subscribe_to_everyone(ws_settings: Settings) -> None:
    with served(ws_settings) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            admin = await live_admin(http, ws_settings)
            alice = await signed_up(http)
            async with connected(base, f"?token={admin.access_token}&scope=all") as ws:
                assert await receive(ws) == {"type": "subscribed", "scope": "all"}
                event_id = await publish(http, alice.id)
                assert (await receive(ws))["id"] == event_id


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("?token=not-a-jwt", "Invalid or expired token"),
        ("?token={token}&scope=all", "only admins may subscribe to every user's events"),
        ("?token={token}&scope=mine", "scope is 'own' or 'all'"),
    ],
)
async def test_a_refused_connection_closes_with_1008_before_any_event(
    ws_settings: Settings, query: str, reason: str
) -> None:
    with served(ws_settings) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            alice = await signed_up(http)
            async with connected(base, query.format(token=alice.access_token)) as ws:
                assert await closed_with(ws) == (1008, reason)


async def test_a_first_message_that_is_not_auth_is_refused(ws_settings: Settings) -> None:
    with served(ws_settings) as base:
        async with connected(base) as ws:
            await ws.send("hello")
            code, reason = await closed_with(ws)
    assert code == 1008
    assert "auth" in reason


async def test_a_client_that_never_authenticates_is_closed(live_settings: Settings) -> None:
    settings = live_settings.model_copy(update={"ws_auth_timeout_seconds": 0.2})
    with served(settings) as base:
        async with connected(base) as ws:
            assert await closed_with(ws) == (1008, "authenticate within the first message")


async def test_a_logged_out_session_cannot_connect(ws_settings: Settings) -> None:
    with served(ws_settings) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            alice = await signed_up(http)
            await http.post("/api/v1/auth/logout", json={"refresh_token": alice.refresh_token})
            async with connected(base, f"?token={alice.access_token}") as ws:
                code, _ = await closed_with(ws)
    assert code == 1008


def _expiring_token(settings: Settings, account: Account, seconds: float) -> str:
    claims = TokenService(settings).decode(account.access_token, "access")
    lifetime = timedelta(minutes=settings.access_token_minutes)
    issued = utcnow() - lifetime + timedelta(seconds=seconds)
    return (
        TokenService(settings)
        .issue("access", subject=claims.subject, session_id=claims.session_id, now=issued)
        .token
    )


async def test_the_socket_closes_when_the_token_expires(ws_settings: Settings) -> None:
    with served(ws_settings) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            alice = await signed_up(http)
            token = _expiring_token(
                ws_settings, alice, 4
            )  # room for a loaded machine to authenticate first
            async with connected(base, f"?token={token}") as ws:
                assert (await receive(ws))["type"] == "subscribed"
                assert await closed_with(ws, within=10) == (1008, "token expired")


async def test_heartbeats_keep_coming(live_settings: Settings) -> None:
    settings = live_settings.model_copy(update={"ws_heartbeat_seconds": 0.1})
    with served(settings) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            alice = await signed_up(http)
            async with connected(base, f"?token={alice.access_token}") as ws:
                await receive(ws)
                beats = [await receive(ws) for _ in range(3)]
    assert [beat["type"] for beat in beats] == ["heartbeat"] * 3
    assert all(TIMESTAMP.fullmatch(beat["at"]) for beat in beats), beats


async def test_shutdown_closes_sockets_with_1001(ws_settings: Settings) -> None:
    with served(ws_settings, ws=PROTOCOL) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            alice = await signed_up(http)
        ws = await websockets.connect(
            base.replace("http", "ws", 1) + f"/api/v1/ws?token={alice.access_token}"
        )
        assert (await receive(ws))["type"] == "subscribed"
        waiting = asyncio.create_task(closed_with(ws, within=20))
        await asyncio.sleep(0.1)
    # Leaving `served` stopped the server the way SIGTERM does.
    assert await waiting == (1001, "server shutting down")


async def test_logout_closes_that_logins_sockets_and_only_those(ws_settings: Settings) -> None:
    with served(ws_settings) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            alice = await signed_up(http)
            elsewhere = await login(http, alice.email, alice.password)
            async with (
                connected(base, f"?token={alice.access_token}") as leaving,
                connected(base, f"?token={elsewhere['access_token']}") as staying,
            ):
                for ws in (leaving, staying):
                    assert (await receive(ws))["type"] == "subscribed"
                logout = await http.post(
                    "/api/v1/auth/logout", json={"refresh_token": alice.refresh_token}
                )
                assert logout.status_code == 204
                assert await closed_with(leaving) == (1008, "session ended (logout)")
                event_id = await publish(http, alice.id)
                assert (await receive(staying))["id"] == event_id  # the other login is open


async def test_password_change_and_deactivation_close_sockets(ws_settings: Settings) -> None:
    with served(ws_settings) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            admin = await live_admin(http, ws_settings)
            alice = await signed_up(http)
            other = await login(http, alice.email, alice.password)
            async with (
                connected(base, f"?token={alice.access_token}") as changer,
                connected(base, f"?token={other['access_token']}") as other_login,
            ):
                for ws in (changer, other_login):
                    assert (await receive(ws))["type"] == "subscribed"
                changed = await http.patch(
                    "/api/v1/users/me",
                    headers=alice.headers,
                    json={"password": "brand-new-pass-1", "current_password": alice.password},
                )
                assert changed.status_code == 200, changed.text
                assert await closed_with(other_login) == (
                    1008,
                    "session ended (password_changed)",
                )
                deactivated = await http.patch(
                    f"/api/v1/users/{alice.id}", headers=admin.headers, json={"is_active": False}
                )
                assert deactivated.status_code == 200, deactivated.text
                assert await closed_with(changer) == (1008, "session ended (deactivated)")


@pytest.mark.skipif(REDIS_URL is None, reason="needs KEEL_TEST_REDIS_URL")
async def test_a_logout_on_one_process_closes_the_socket_on_another(
    ws_settings: Settings,
) -> None:
    """Two API processes (two apps, two servers) sharing the database and Redis."""
    shared = ws_settings.model_copy(
        update={"redis_url": SecretStr(str(REDIS_URL)), "events_channel": f"t:{uuid.uuid4()}"}
    )
    with served(shared) as first, served(shared) as second:
        async with (
            httpx.AsyncClient(base_url=first) as one,
            httpx.AsyncClient(base_url=second) as two,
        ):
            await wait_until_subscribed(one)
            await wait_until_subscribed(two)
            alice = await signed_up(one)
            async with connected(first, f"?token={alice.access_token}") as ws:
                assert (await receive(ws))["type"] == "subscribed"
                logout = await two.post(
                    "/api/v1/auth/logout", json={"refresh_token": alice.refresh_token}
                )
                assert logout.status_code == 204
                assert await closed_with(ws) == (1008, "session ended (logout)")


async def wait_until_subscribed(http: httpx.AsyncClient, within: float = 10.0) -> None:
    """/ready answers 200 once the process holds its event subscription."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (await http.get("/ready")).status_code == 200:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not subscribed to events within {within} s")


async def test_every_socket_is_sent_the_same_text_for_one_event(ws_settings: Settings) -> None:
    with served(ws_settings) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            admin = await live_admin(http, ws_settings)
            alice = await signed_up(http)
            async with (
                connected(base, f"?token={alice.access_token}") as first,
                connected(base, f"?token={alice.access_token}") as second,
                connected(base, f"?token={admin.access_token}&scope=all") as watcher,
            ):
                sockets = (first, second, watcher)
                for ws in sockets:
                    assert (await receive(ws))["type"] == "subscribed"
                event_id = await publish(http, alice.id)
                texts = []
                for ws in sockets:
                    async with asyncio.timeout(5):
                        texts.append(await ws.recv())
    assert texts[0] == texts[1] == texts[2]
    assert isinstance(texts[0], str)  # a text frame, as before
    assert json.loads(texts[0])["id"] == event_id


def test_compression_is_off_by_default() -> None:
    assert Settings.model_fields["ws_compression"].default is False


@pytest.mark.parametrize(
    ("server_compresses", "client_offers", "expected"),
    [
        (False, "deflate", []),  # the default: a browser's offer is declined
        (True, None, []),  # on, but the client does not offer it: plain frames
        (True, "deflate", [PerMessageDeflate.__name__]),
    ],
    ids=["off-offered", "on-not-offered", "on-offered"],
)
async def test_compression_is_negotiated_only_when_on_and_offered(
    ws_settings: Settings, server_compresses: bool, client_offers: str | None, expected: list[str]
) -> None:
    settings = ws_settings.model_copy(update={"ws_compression": server_compresses})
    with served_as_keel_serves(settings) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            alice = await signed_up(http)
            query = f"?token={alice.access_token}"
            async with connected(base, query, compression=client_offers) as ws:
                extensions, header = negotiated(ws)
                assert (await receive(ws))["type"] == "subscribed"
                event_id = await publish(http, alice.id)
                message = await receive(ws)  # inflated by the client when compressed: intact
    assert extensions == expected
    assert (header or "").startswith("permessage-deflate") == bool(expected)
    assert message["id"] == event_id
    assert message["data"] == {"n": 1}


async def test_a_refusal_is_the_same_with_compression_on(ws_settings: Settings) -> None:
    settings = ws_settings.model_copy(update={"ws_compression": True})
    with served_as_keel_serves(settings) as base:
        async with connected(base, "?token=not-a-jwt") as ws:
            assert negotiated(ws)[0] == [PerMessageDeflate.__name__]
            assert await closed_with(ws) == (1008, "Invalid or expired token")


def test_the_compression_setting_maps_to_the_server_and_refuses_nonsense(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not load_settings(_env_file=None).ws_compression
    monkeypatch.setenv("KEEL_WS_COMPRESSION", "true")
    on = load_settings(_env_file=None)
    assert websocket_server_options(on) == {"ws": PROTOCOL, "ws_per_message_deflate": True}
    monkeypatch.setenv("KEEL_WS_COMPRESSION", "false")
    off = load_settings(_env_file=None)
    assert websocket_server_options(off) == {"ws": PROTOCOL, "ws_per_message_deflate": False}
    monkeypatch.setenv("KEEL_WS_COMPRESSION", "sometimes")
    with pytest.raises(ConfigError, match="KEEL_WS_COMPRESSION: Input should be a valid boolean"):
        load_settings(_env_file=None)
