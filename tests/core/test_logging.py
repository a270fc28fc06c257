"""Structured logs: request ids on every line, secrets never written, JSON in production."""

from __future__ import annotations

import json
import logging

import pytest

from keel.core.logging import REDACTED, configure_logging, get_logger, redact_secrets


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
