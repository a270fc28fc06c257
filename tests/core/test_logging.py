"""Structured logs: request ids on every line, secrets never written, JSON in production."""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.core.logging import (
    MAX_TRACEBACK_LINES,
    REDACTED,
    _DroppingQueueHandler,
    configure_logging,
    get_logger,
    redact_secrets,
    scrub_rendered,
)
from tests.support.network import free_port
from tests.support.processes import development_env, server_process
from tests.support.routes import BOOM_SECRET


def test_sensitive_keys_are_redacted_also_one_level_down() -> None:
    event = redact_secrets(
        None,
        "info",
        {
            "event": "login",
            "password": "hunter2",
            "Authorization": "Bearer abc",
            "headers": {"cookie": "s=1", "accept": "json"},
            "email": "a@example.com",
        },
    )
    assert event["password"] == REDACTED
    assert event["Authorization"] == REDACTED
    assert event["headers"] == {"cookie": REDACTED, "accept": "json"}
    assert event["email"] == "a@example.com"


def test_json_lines_in_production(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", json=True)
    try:
        get_logger("keel.test").info("payment", card_number="4242424242424242", amount=10)
        logging.getLogger("some.library").warning("plain %s", "stdlib")
    finally:
        configure_logging(level="INFO", json=False)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    ours = next(line for line in lines if line["event"] == "payment")
    theirs = next(line for line in lines if line["event"] == "plain stdlib")
    assert ours["card_number"] == REDACTED
    assert ours["amount"] == 10
    assert ours["level"] == "info"
    assert "timestamp" in ours
    assert theirs["logger"] == "some.library"
    assert "4242424242424242" not in json.dumps(lines)


def test_reconfiguring_keeps_one_handler() -> None:
    configure_logging()
    configure_logging()
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "keel"]
    assert len(ours) == 1


def _charge(card_number: str, password: str) -> None:
    raise ValueError("the gateway said no")


@pytest.mark.parametrize("json_lines", [True, False])
def test_tracebacks_never_show_local_variables(
    capsys: pytest.CaptureFixture[str], json_lines: bool
) -> None:
    """Locals are where secrets live mid-request; a logged traceback must not print them."""
    configure_logging(level="INFO", json=json_lines)
    try:
        card, secret = "4000" + "0000" * 3, "hunter2-" + "secret"  # not in the source lines
        try:
            _charge(card, secret)
        except ValueError:
            get_logger("keel.test").exception("charge_failed")
    finally:
        configure_logging(level="INFO", json=False)
    output = capsys.readouterr().out
    assert "charge_failed" in output
    assert "the gateway said no" in output  # the traceback itself is still there
    assert "4000" + "0000" * 3 not in output
    assert "hunter2-" + "secret" not in output


TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '127.0.0.1:5 - "WebSocket /api/v1/ws?token=abc.def&scope=all" [accepted]',
            f'127.0.0.1:5 - "WebSocket /api/v1/ws?token={REDACTED}&scope={REDACTED}" [accepted]',
        ),
        (f"Authorization: Bearer {TOKEN} rest", "Authorization: Bearer [redacted-token] rest"),
        (f"stored {HASH}, done", "stored [redacted-hash], done"),
        (
            'null value in column "email"\nDETAIL:  Failing row contains (1, x, secret).\n[SQL',
            f'null value in column "email"\nDETAIL:  {REDACTED}\n[SQL',
        ),
        ("is this a question? yes; WHERE id = ? AND (?, ?)", None),  # prose and SQL untouched
    ],
)
def test_secrets_inside_text_are_masked_in_the_rendered_line(
    line: str, expected: str | None
) -> None:
    assert scrub_rendered(None, "info", line) == (line if expected is None else expected)


@pytest.mark.parametrize("json_lines", [True, False])
def test_uvicorns_websocket_line_never_shows_the_token(
    capsys: pytest.CaptureFixture[str], json_lines: bool
) -> None:
    """uvicorn logs every WebSocket handshake with its URL, `?token=` included."""
    configure_logging(level="INFO", json=json_lines)
    try:
        logging.getLogger("uvicorn.error").info(
            '%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", f"/api/v1/ws?token={TOKEN}"
        )
        get_logger("keel.test").info("stored", note=f"hash {HASH}", detail="a\nDETAIL:  row (x)")
    finally:
        configure_logging(level="INFO", json=False)
    output = capsys.readouterr().out
    assert "WebSocket /api/v1/ws?token=" in output
    for secret in (TOKEN, HASH, "row (x)"):
        assert secret not in output
    if json_lines:
        assert all(json.loads(line) for line in output.splitlines() if line)


def test_console_tracebacks_are_plain_and_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    """A deep stack is printed as plain text, its middle left out: a rich, boxed rendering of
    hundreds of frames froze the event loop for seconds (issue 10)."""
    configure_logging(level="INFO", json=False)
    try:
        try:
            _recurse(400)
        except RecursionError:
            get_logger("keel.test").exception("deep_failure")
    finally:
        configure_logging(level="INFO", json=False)
    output = capsys.readouterr().out
    assert "deep_failure" in output
    assert "Traceback (most recent call last):" in output
    assert "RecursionError: down here" in output  # the end, where it failed, is kept
    assert "│" not in output, "no boxes"
    assert "╭" not in output, "no boxes"
    assert len(output.splitlines()) <= MAX_TRACEBACK_LINES + 5


def _recurse(depth: int) -> None:
    if depth == 0:
        raise RecursionError("down here")
    _recurse(depth - 1)


# A real process with its own stdout: the burst of failing requests and /health race on one
# event loop, as in production.
BURST = 200
CONCURRENCY = 10
HEALTH_BOUND_SECONDS = 2.5
"""Generous: on a loaded 2-core machine /health took up to 0.27 s with logging off and 0.55 s
with it on, and 1.08 s once in a full CI run (two test workers and a TypeScript build beside
it); before the fix it took more than 30 s (no answer)."""
STUCK = 30.0


@contextmanager
def routes_server(tmp_path: Path, stdout: Any, **env: str) -> Iterator[str]:
    port = free_port()
    with server_process(
        [sys.executable, "-m", "tests.support.routes_server", str(port)],
        port=port,
        env=development_env(tmp_path / "logs.db", KEEL_RATE_LIMIT_ENABLED="false", **env),
        cwd=Path(__file__).resolve().parents[2],
        stdout=stdout,
    ) as served:
        yield served.base


async def slowest_health_during_a_burst_of_500s(base: str) -> float:
    """Fire BURST requests that fail with a deep traceback (CONCURRENCY at a time) and poll
    /health meanwhile: the slowest /health in seconds (STUCK if anything got no answer)."""
    slowest = 0.0
    done = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=STUCK) as http:

        async def fail(gate: asyncio.Semaphore) -> None:
            async with gate:
                response = await http.get("/_test/boom-deep", params={"depth": 100})
                assert response.status_code == 500

        async def poll() -> None:
            nonlocal slowest
            async with httpx.AsyncClient(base_url=base, timeout=STUCK) as probe:
                while not done.is_set():
                    started = time.monotonic()
                    assert (await probe.get("/health")).status_code == 200
                    slowest = max(slowest, time.monotonic() - started)
                    await asyncio.sleep(0.02)

        poller = asyncio.create_task(poll())
        gate = asyncio.Semaphore(CONCURRENCY)
        try:
            await asyncio.gather(*(fail(gate) for _ in range(BURST)))
        except httpx.TimeoutException:
            return STUCK
        finally:
            done.set()
        try:
            await poller
        except httpx.TimeoutException:
            return STUCK
    return slowest


async def test_a_burst_of_500s_leaves_health_fast_and_console_tracebacks_plain(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "stdout.log"
    with log_file.open("wb") as stdout, routes_server(tmp_path, stdout) as base:
        slowest = await slowest_health_during_a_burst_of_500s(base)
    output = log_file.read_text()
    assert slowest < HEALTH_BOUND_SECONDS, f"/health took {slowest:.2f} s during the burst"
    tracebacks = output.split("Traceback (most recent call last):")[1:]
    assert len(tracebacks) == BURST
    assert "RuntimeError: boom on purpose" in tracebacks[-1]
    assert BOOM_SECRET not in output, "a local variable reached the log"
    longest = max(len(part.splitlines()) for part in tracebacks)
    assert longest <= MAX_TRACEBACK_LINES + 5


async def test_a_stdout_nobody_reads_does_not_stall_requests(tmp_path: Path) -> None:
    """JSON lines into a pipe whose reader is stuck: once the pipe is full, a write on the
    event loop would block every request; the log waits (or drops lines) instead."""
    with routes_server(tmp_path, subprocess.PIPE, KEEL_LOG_JSON="true") as base:
        slowest = await slowest_health_during_a_burst_of_500s(base)
    assert slowest < HEALTH_BOUND_SECONDS, f"/health took {slowest:.2f} s during the burst"


def test_a_full_log_queue_drops_lines_and_then_says_how_many() -> None:
    """The writer fell behind: a line that does not fit is dropped, never waited for, and
    the count is logged once there is room again."""
    configure_logging(level="INFO", json=True)
    ours = next(h for h in logging.getLogger().handlers if h.get_name() == "keel")
    lines: queue.Queue[logging.LogRecord | None] = queue.Queue(2)
    handler = _DroppingQueueHandler(lines)
    handler.setFormatter(ours.formatter)
    logger = logging.getLogger("keel.test.dropping")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for number in range(5):
            logger.warning("line %s", number)
        kept = [json.loads(str(record.msg))["event"] for record in drain(lines)]
        logger.warning("after")
        later = [json.loads(str(record.msg)) for record in drain(lines)]
    finally:
        logger.removeHandler(handler)
    assert kept == ["line 0", "line 1"]
    assert later[0]["event"] == "log_lines_dropped"
    assert later[0]["count"] == 3
    assert later[1]["event"] == "after"


def drain(lines: queue.Queue[logging.LogRecord | None]) -> list[logging.LogRecord]:
    records = []
    while not lines.empty():
        record = lines.get_nowait()
        assert record is not None
        records.append(record)
    return records
