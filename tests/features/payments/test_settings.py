"""The payments feature's settings and checks: they join core's, in one list of problems."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from keel.cli import cli
from keel.core.config import CoreSettings, ensure_safe
from keel.core.errors import ConfigError
from keel.features.payments.settings import PaymentsSettings
from keel.settings import diagnose, load_settings
from tests.support.settings import SAFE_PRODUCTION, assert_refused, from_environment


def test_gateway_settings_are_read_from_their_keel_names(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://gateway.example.com"
    settings = from_environment(monkeypatch, payment_gateway="http", payment_gateway_url=url)
    assert (settings.payment_gateway, settings.payment_gateway_url) == ("http", url)
    settings = from_environment(
        monkeypatch, payment_gateway_api_key="key-123", payment_gateway_timeout_seconds="3"
    )
    assert settings.payment_gateway_api_key is not None
    assert settings.payment_gateway_api_key.get_secret_value() == "key-123"
    assert settings.payment_gateway_timeout_seconds == 3
    assert settings.masked()["payment_gateway_api_key"] == "**********"


def test_an_http_gateway_needs_a_url_in_any_environment() -> None:
    with pytest.raises(
        ConfigError, match="KEEL_PAYMENT_GATEWAY=http needs KEEL_PAYMENT_GATEWAY_URL"
    ):
        load_settings(payment_gateway="http", _env_file=None)


@pytest.mark.parametrize(
    ("name", "value"), [("payment_gateway", "paypal"), ("payment_gateway_timeout_seconds", "61")]
)
def test_an_invalid_gateway_setting_is_refused_by_its_env_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    assert_refused(monkeypatch, name, value)


def test_production_refuses_the_sandbox_along_with_core_s_problems() -> None:
    settings = load_settings(**{**SAFE_PRODUCTION, "payment_gateway": "sandbox", "db_echo": True})
    with pytest.raises(ConfigError) as caught:
        ensure_safe(settings)
    assert caught.value.problems == [
        "KEEL_DB_ECHO is on, which logs every SQL statement and its parameters",
        "KEEL_PAYMENT_GATEWAY is sandbox, which charges no real card",
    ]


def test_the_sandbox_is_no_problem_outside_production() -> None:
    assert load_settings(payment_gateway="sandbox", _env_file=None).problems() == []


def test_the_feature_s_checks_extend_core_s_rather_than_replace_them() -> None:
    """Core's class alone knows no gateway; the feature's adds its checks to core's."""
    values = {**SAFE_PRODUCTION, "payment_gateway": "sandbox", "db_echo": True}
    core = CoreSettings(**values).problems()
    assert not any("PAYMENT" in problem for problem in core)
    assert PaymentsSettings(**values).problems() == [
        *core,
        "KEEL_PAYMENT_GATEWAY is sandbox, which charges no real card",
    ]


def test_diagnose_reports_the_gateway_with_invalid_values_and_core_s_problems() -> None:
    settings, problems = diagnose(
        environment="production", payment_gateway="http", port=0, _env_file=None
    )
    assert settings is not None
    assert problems[0].startswith("KEEL_PORT:")
    assert "KEEL_PAYMENT_GATEWAY=http needs KEEL_PAYMENT_GATEWAY_URL" in problems
    assert "KEEL_JWT_SECRET is not set" in problems


def test_check_config_lists_the_gateway_problem_in_the_same_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEEL_ENVIRONMENT", "production")
    monkeypatch.setenv("KEEL_PAYMENT_GATEWAY", "http")  # without KEEL_PAYMENT_GATEWAY_URL
    monkeypatch.setenv("KEEL_JOB_BROKER", "redis")  # without KEEL_REDIS_URL
    result = CliRunner().invoke(cli, ["check-config"])
    assert result.exit_code == 2
    assert "KEEL_PAYMENT_GATEWAY=http needs KEEL_PAYMENT_GATEWAY_URL" in result.output
    assert "KEEL_JOB_BROKER=redis needs KEEL_REDIS_URL" in result.output
    assert "KEEL_JWT_SECRET is not set" in result.output
