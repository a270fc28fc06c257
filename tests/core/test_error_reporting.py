"""Error reports to Sentry: sent to a real HTTP endpoint on loopback, and checked for what
they must carry (the request id, the release) and what they must never carry."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keel import __version__
from keel.core.error_reporting import report_exception, scrub_event
from keel.main import create_app
from keel.settings import Settings
from tests.support.accounts import signed_up
from tests.support.app import serve
from tests.support.jobs import enqueue, jobs_client, wait_for_job
from tests.support.servers import uvicorn_server

CARD = "4242 4242 4242 4242"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


class Collector:
    """A Sentry ingest endpoint: keeps every event item of every envelope it receives."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.raw: list[bytes] = []

    async def envelope(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.raw.append(body)
        lines = body.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header).get("type") == "event":
                self.events.append(json.loads(payload))
        return Response(status_code=200)

    def wait(self, count: int = 1, seconds: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.events


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    sink = Collector()
    app = Starlette(routes=[Route("/api/{project}/envelope/", sink.envelope, methods=["POST"])])
    with uvicorn_server(app, name="sentry-sink") as base_url:
        host = base_url.removeprefix("http://")
        yield sink, f"http://public@{host}/7"
    sentry_sdk.get_global_scope().set_client(None)  # the next test starts with Sentry off


def with_boom(app: FastAPI) -> FastAPI:
    @app.get("/_test/boom")
    async def boom() -> None:
        raise RuntimeError(f"charging {CARD} with {JWT} failed")

    return app


async def test_an_unexpected_error_is_reported_with_its_request_id_and_release(
    settings: Settings, collector: tuple[Collector, str]
) -> None:
    sink, dsn = collector
    app = with_boom(create_app(settings.model_copy(update={"sentry_dsn": SecretStr(dsn)})))
    async with serve(app, raise_app_exceptions=False) as http:
        response = await http.get(
            "/_test/boom?token=secret-in-query",
            headers={"Authorization": f"Bearer {JWT}", "Cookie": "session=abc"},
        )
    assert response.status_code == 500
    [event] = sink.wait()
    assert event["tags"]["request_id"] == response.headers["x-request-id"]
    assert event["release"] == f"keel@{__version__}"
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    sent = b"".join(sink.raw).decode()
    for secret in (CARD, JWT, "secret-in-query", "session=abc", "Bearer"):
        assert secret not in sent


async def test_a_job_that_fails_for_good_is_reported_once_with_its_id(
    fast_jobs_settings: Settings, collector: tuple[Collector, str]
) -> None:
    sink, dsn = collector
    settings = fast_jobs_settings.model_copy(update={"sentry_dsn": SecretStr(dsn)})
    async with jobs_client(settings) as http:
        account = await signed_up(http)
        job_id = await enqueue(http, account, "test.flaky", max_attempts=2)
        job = await wait_for_job(http, account, job_id)
    assert job["status"] == "failed"
    events = sink.wait()
    assert [event["tags"]["job_id"] for event in events] == [job_id]  # the retry is no error
    assert events[0]["tags"]["job_kind"] == "test.flaky"


async def test_expected_errors_are_not_reported(
    settings: Settings, collector: tuple[Collector, str]
) -> None:
    sink, dsn = collector
    reporting = settings.model_copy(update={"sentry_dsn": SecretStr(dsn)})
    async with serve(create_app(reporting)) as http:
        missing = await http.get("/api/v1/users/me")
        invalid = await http.post("/api/v1/auth/register", json={"email": "x\u0000"})
    assert (missing.status_code, invalid.status_code) == (401, 422)
    assert sink.wait(seconds=1.0) == []


def test_reporting_is_a_no_op_when_off() -> None:
    sentry_sdk.get_global_scope().set_client(None)
    report_exception(RuntimeError("nobody listens"))  # must not raise, must not send


def test_without_a_dsn_sentry_is_never_imported(settings: Settings) -> None:
    script = (
        "import asyncio, sys\n"
        "from asgi_lifespan import LifespanManager\n"
        "from keel.settings import load_settings\n"
        "from keel.main import create_app\n"
        "async def main():\n"
        "    async with LifespanManager(create_app(load_settings(environment='test'))):\n"
        "        pass\n"
        "asyncio.run(main())\n"
        "assert 'sentry_sdk' not in sys.modules, 'imported'\n"
    )
    env = {"KEEL_DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_scrubber_drops_request_secrets_and_masks_text() -> None:
    event: Any = {
        "request": {
            "url": "http://api/x?token=abc",
            "query_string": "token=abc",
            "data": {"password": "hunter2"},
            "cookies": {"session": "abc"},
            "headers": {"Authorization": "Bearer x", "X-Api-Key": "k", "User-Agent": "ua"},
            "env": {"REMOTE_ADDR": "10.0.0.1"},
        },
        "user": {"ip_address": "10.0.0.1"},
        "breadcrumbs": {"values": [{"message": "login hunter2"}]},
        "exception": {"values": [{"value": f"card {CARD} token {JWT}"}]},
    }
    scrubbed: Any = scrub_event(event)
    assert scrubbed["request"] == {"url": "http://api/x", "headers": {"User-Agent": "ua"}}
    assert "user" not in scrubbed
    assert "breadcrumbs" not in scrubbed
    value = scrubbed["exception"]["values"][0]["value"]
    assert CARD not in value
    assert JWT not in value


def test_the_scrubber_leaves_short_numbers_ids_and_tags_alone() -> None:
    text = "order 12345 failed after 3 attempts (job 59688086-9661-4803-bf02-bfa98977ecbe)"
    event: Any = {
        "exception": {"values": [{"value": text}]},
        "tags": {"request_id": "59688086-9661-4803-bf02-bfa98977ecbe"},
    }
    scrubbed: Any = scrub_event(event)
    assert scrubbed["exception"]["values"][0]["value"] == text
    assert scrubbed["tags"] == event["tags"]
