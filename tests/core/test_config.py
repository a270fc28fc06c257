"""Settings: zero-config development, and production that refuses unsafe setups all at once."""

from __future__ import annotations

import pytest

from keel.core.config import DEFAULT_SQLITE_URL, CoreSettings, ensure_safe
from keel.core.errors import ConfigError
from keel.settings import load_settings
from tests.support.settings import SAFE_PRODUCTION


def test_development_needs_no_configuration() -> None:
    settings = load_settings(_env_file=None)
    assert settings.environment == "development"
    assert settings.database_url == DEFAULT_SQLITE_URL
    assert settings.jwt_secret is not None
    assert len(settings.jwt_secret.get_secret_value()) >= 32
    assert settings.secret_was_generated
    assert settings.should_auto_migrate
    assert not settings.json_logs
    assert settings.problems() == []


def test_generated_secrets_differ_per_process_start() -> None:
    first = load_settings(_env_file=None).jwt_secret
    second = load_settings(_env_file=None).jwt_secret
    assert first is not None
    assert second is not None
    assert first.get_secret_value() != second.get_secret_value()


def test_environment_variables_are_read_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_ENVIRONMENT", "test")
    monkeypatch.setenv("KEEL_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("KEEL_ALLOWED_HOSTS", '["a.example", "b.example"]')
    monkeypatch.setenv("KEEL_DB_POOL_SIZE", "3")
    settings = load_settings(_env_file=None)
    assert settings.environment == "test"
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.allowed_hosts == ["a.example", "b.example"]
    assert settings.db_pool_size == 3


def test_dotenv_file_is_read(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    env_file = Path(str(tmp_path)) / ".env"
    env_file.write_text("KEEL_APP_NAME=FromDotenv\n")
    assert load_settings(_env_file=env_file).app_name == "FromDotenv"


def test_safe_production_passes() -> None:
    settings = ensure_safe(load_settings(**SAFE_PRODUCTION))
    assert settings.is_production
    assert settings.json_logs
    assert not settings.should_auto_migrate
    assert not settings.secret_was_generated


def test_unsafe_production_lists_every_problem_at_once() -> None:
    """Core's own checks, on core's class (a feature's join them: tests/features/*/)."""
    settings = CoreSettings(
        environment="production",
        jwt_secret="short",
        cors_origins="*",
        workers=4,
        storage_url="memory://",
        db_echo=True,
        _env_file=None,
    )
    with pytest.raises(ConfigError) as caught:
        ensure_safe(settings)
    problems = caught.value.problems
    text = str(caught.value)
    assert len(problems) == 7
    for needle in (
        "KEEL_JWT_SECRET is shorter than 32 bytes",
        "SQLite",
        "KEEL_CORS_ORIGINS is '*'",
        "KEEL_ALLOWED_HOSTS is '*'",
        "KEEL_WORKERS=4",
        "memory://",
        "KEEL_DB_ECHO",
    ):
        assert needle in text


def test_missing_production_secret_is_reported() -> None:
    values = {**SAFE_PRODUCTION, "jwt_secret": None}
    with pytest.raises(ConfigError, match="KEEL_JWT_SECRET is not set"):
        ensure_safe(load_settings(**values))


def test_invalid_values_are_reported_together() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environment="staging", access_token_minutes=90, port=0, _env_file=None)
    text = str(caught.value)
    assert "KEEL_ENVIRONMENT" in text
    assert "KEEL_ACCESS_TOKEN_MINUTES" in text
    assert "KEEL_PORT" in text


def test_masked_settings_hide_secrets_and_passwords() -> None:
    shown = load_settings(**SAFE_PRODUCTION).masked()
    assert shown["jwt_secret"] == "**********"
    assert shown["redis_url"] == "**********"
    assert "pw" not in shown["database_url"]
    assert "***" in shown["database_url"]


def test_settings_are_immutable() -> None:
    settings = load_settings(_env_file=None)
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1


def test_env_example_documents_every_setting() -> None:
    from pathlib import Path

    from keel.settings import Settings

    text = (Path(__file__).parents[2] / ".env.example").read_text()
    missing = [name for name in Settings.model_fields if f"KEEL_{name.upper()}=" not in text]
    assert missing == []
    assert load_settings(_env_file=Path(__file__).parents[2] / ".env.example").problems() == []


def test_jobs_follow_redis_unless_told_otherwise() -> None:
    assert load_settings(_env_file=None).jobs_embedded
    assert not load_settings(redis_url="redis://r:6379/0", _env_file=None).jobs_embedded
    forced = load_settings(redis_url="redis://r:6379/0", job_broker="embedded", _env_file=None)
    assert forced.jobs_embedded


def test_redis_jobs_need_redis() -> None:
    with pytest.raises(ConfigError, match="KEEL_JOB_BROKER=redis needs KEEL_REDIS_URL"):
        load_settings(job_broker="redis", _env_file=None)


def test_production_refuses_embedded_jobs_in_several_processes() -> None:
    settings = load_settings(**{**SAFE_PRODUCTION, "workers": 4, "job_broker": "embedded"})
    with pytest.raises(ConfigError, match="KEEL_JOB_BROKER is embedded with KEEL_WORKERS=4"):
        ensure_safe(settings)


@pytest.mark.parametrize("url", ["ftp://host/x", "s3://", "files"])
def test_storage_url_must_name_a_known_backend(url: str) -> None:
    with pytest.raises(ConfigError, match="KEEL_STORAGE_URL"):
        load_settings(storage_url=url, _env_file=None)
