"""The suite-wide log leak scan (tests/support/leak_scan.py) catches what it must.

The scan itself runs over every session; these tests prove it can fail: a planted leak in an
inner session fails that session, with and without pytest-xdist workers, and names the kind
of secret without printing it.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import httpx
import pytest
import websockets

from keel.core.logging import configure_logging, get_logger
from keel.core.security.passwords import PasswordHasher
from keel.core.security.tokens import TokenService
from keel.main import create_app
from keel.settings import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.support import routes
from tests.support.accounts import signed_up
from tests.support.app import mounted_routes
from tests.support.leak_scan import LeakScanner, instrument
from tests.support.servers import uvicorn_server

WEBSOCKET = "/api/v1/ws"
"""Driven when the app has it (the realtime feature); its `?token=` must not be logged."""

ROOT = Path(__file__).resolve().parents[1]

INNER_TESTS = """
import asyncio
import logging
import uuid

from keel.settings import load_settings
from keel.core.logging import configure_logging, get_logger
from keel.core.security.passwords import PasswordHasher
from keel.core.security.tokens import TokenService


def secrets():
    configure_logging()
    password = "planted-" + uuid.uuid4().hex
    hasher = PasswordHasher(time_cost=1, memory_kib=1024)
    hashed = asyncio.run(hasher.hash(password))
    settings = load_settings(_env_file=None)
    token = TokenService(settings).issue(
        "access", subject=uuid.uuid4(), session_id=uuid.uuid4()
    ).token
    return password, hashed, token


def test_redacted_lines_are_fine():
    password, hashed, token = secrets()
    log = get_logger("inner")
    log.info("login", password=password)  # a sensitive key: masked
    log.info("stored", note="hash " + hashed)  # an Argon2 hash in text: masked
    logging.getLogger("uvicorn.error").info('"WebSocket /api/v1/ws?token=%s"', token)


def test_{name}():
    password, _, _ = secrets()
    get_logger("inner").info("oops", note={leak})
"""


def inner_session(pytester: pytest.Pytester, leak: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_inner=INNER_TESTS.format(name="planted", leak=leak))
    pytester.makeini("[pytest]\n")  # not Keel's own options
    return pytester.runpytest_subprocess("-p", "xdist", "-p", "tests.support.leak_scan", *args)


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # only the plugins named here
    for name in ("KEEL_TEST_DATABASE_URL", "KEEL_TEST_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    return pytester


def test_a_planted_leak_fails_the_session_under_xdist(inner: pytest.Pytester) -> None:
    """Two workers, one test each: the worker whose test leaked fails at its session's end."""
    result = inner_session(inner, '"the password was " + password', "-n", "2")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*1 secret(s) created by the suite appeared in its log output*",
            "*password in: * note='the password was <password plan...>'",
            "ERROR test_inner.py::test_planted - AssertionError*",
        ]
    )


def test_a_session_without_leaks_passes(inner: pytest.Pytester) -> None:
    result = inner_session(inner, '"nothing secret here"')
    result.assert_outcomes(passed=2)


def test_the_scanner_sees_lines_as_keels_handler_renders_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Redaction that Keel's formatter does (keys, query strings) is not a leak; a secret in
    plain text is, whichever logger wrote it."""
    scanner = LeakScanner()
    secret = f"planted-{uuid.uuid4().hex}"
    scanner.record_secret("password", secret)
    scanner.record_secret("token", "short")  # too short to look for: ignored
    root = logging.getLogger()
    configure_logging()
    root.addHandler(scanner)
    try:
        get_logger("keel.test").info("login", password=secret)
        logging.getLogger("uvicorn.error").info("GET /api/v1/x?password=%s", secret)
        assert scanner.leaks() == []
        logging.getLogger("some.library").warning("connecting with %s", secret)
    finally:
        root.removeHandler(scanner)
    leaks = scanner.leaks()
    assert [(leak.kind, leak.secret) for leak in leaks] == [("password", secret)]
    assert "connecting with" in leaks[0].line
    assert scanner.secrets == 1
    capsys.readouterr()


async def test_no_secret_reaches_the_log_even_at_debug(
    live_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The session scan sees the suite's own level (INFO); this drives the flows that handle
    secrets at DEBUG, through a real server: register, login, a WebSocket with `?token=`,
    refresh, a password change, a 500, logout."""
    # JSON lines, as production writes them (the console's boxed tracebacks are slow, which
    # is another issue's matter).
    settings = live_settings.model_copy(update={"log_level": "DEBUG", "log_json": True})
    scanner = LeakScanner()
    application = create_app(settings)
    application.include_router(routes.router)
    root = logging.getLogger()
    root.addHandler(scanner)
    try:
        with uvicorn_server(application, lifespan="on") as base:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                account = await signed_up(http)
                for secret in (account.password, account.access_token, account.refresh_token):
                    scanner.record_secret("secret", secret)
                if WEBSOCKET in {path for path, _ in mounted_routes()}:
                    url = (
                        base.replace("http", "ws", 1) + f"{WEBSOCKET}?token={account.access_token}"
                    )
                    async with websockets.connect(url) as ws:
                        assert json.loads(await ws.recv())["type"] == "subscribed"
                pair = (
                    await http.post(
                        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
                    )
                ).json()
                scanner.record_secret("secret", pair["refresh_token"])
                new_password = f"new-{uuid.uuid4().hex}"
                scanner.record_secret("secret", new_password)
                changed = await http.patch(
                    "/api/v1/users/me",
                    headers={"Authorization": f"Bearer {pair['access_token']}"},
                    json={"password": new_password, "current_password": account.password},
                )
                assert changed.status_code == 200, changed.text
                assert (await http.get("/_test/boom")).status_code == 500
                logout = await http.post(
                    "/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}
                )
                assert logout.status_code == 204
    finally:
        root.removeHandler(scanner)
    capsys.readouterr()
    assert scanner.lines_containing('"level": "debug"')  # DEBUG really was on
    assert [leak.describe() for leak in scanner.leaks()] == []
    # The database layers' own DEBUG lines carry statements, parameters and rows.
    for driver in ('"logger": "aiosqlite"', '"logger": "sqlalchemy.engine'):
        assert scanner.lines_containing(driver) == []


async def test_the_secrets_are_recorded_where_they_are_made(settings: Settings) -> None:
    scanner = LeakScanner()
    with pytest.MonkeyPatch.context() as monkeypatch:
        instrument(scanner, monkeypatch)
        issued = TokenService(settings).issue(
            "access", subject=uuid.uuid4(), session_id=uuid.uuid4()
        )
        TokenService(settings).issue("refresh", subject=uuid.uuid4(), session_id=uuid.uuid4())
        hashed = await PasswordHasher(time_cost=1, memory_kib=1024).hash("correct-horse-1")
    recorded = scanner.recorded()
    assert len(recorded) == 5  # two tokens, the JWT secret once, a password and its hash
    assert recorded[issued.token] == "token"
    assert recorded[hashed] == "hash"
    assert recorded["correct-horse-1"] == "password"
    assert recorded[TEST_JWT_SECRET] == "jwt_secret"
