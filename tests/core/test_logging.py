"""Structured logs: request ids on every line, secrets never written, JSON in production."""

from __future__ import annotations

import json
import logging

import pytest

from keel.core.logging import (
    REDACTED,
    configure_logging,
    get_logger,
    redact_secrets,
    scrub_rendered,
)


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
