"""The `keel` command: check-config, migrate, and serve's refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import cli
from tests.support.databases import fresh_database_url

runner = CliRunner()


def test_check_config_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_JWT_SECRET", "a-very-secret-value-that-must-not-print-0123456789")
    monkeypatch.setenv("KEEL_DATABASE_URL", "postgresql+asyncpg://keel:hunter2@db/keel")
    result = runner.invoke(cli, ["check-config"])
    assert result.exit_code == 0, result.output
    assert "must-not-print" not in result.output
    assert "hunter2" not in result.output
    assert "KEEL_JWT_SECRET" in result.output
    assert "No problems found" in result.output


def test_check_config_lists_production_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_ENVIRONMENT", "production")
    monkeypatch.setenv("KEEL_WORKERS", "3")
    result = runner.invoke(cli, ["check-config"])
    assert result.exit_code == 2
    assert "KEEL_JWT_SECRET is not set" in result.output
    assert "SQLite" in result.output
    assert "KEEL_WORKERS=3" in result.output


def test_invalid_value_is_reported_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_ACCESS_TOKEN_MINUTES", "120")
    result = runner.invoke(cli, ["check-config"])
    assert result.exit_code == 2
    assert "KEEL_ACCESS_TOKEN_MINUTES" in result.output
    assert "Traceback" not in result.output


def test_serve_refuses_unsafe_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_ENVIRONMENT", "production")
    result = runner.invoke(cli, ["serve", "--workers", "2"])
    assert result.exit_code == 2
    assert "refuses to start" in result.output
    assert "KEEL_WORKERS=2" in result.output


def test_migrate_commands_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", fresh_database_url("cli", tmp_path))

    behind = runner.invoke(cli, ["migrate", "current"])
    assert behind.exit_code == 0, behind.output
    assert "(empty database)" in behind.output
    assert "behind head" in behind.output

    upgraded = runner.invoke(cli, ["migrate", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    at_head = runner.invoke(cli, ["migrate", "current"])
    assert "behind head" not in at_head.output

    downgraded = runner.invoke(cli, ["migrate", "downgrade", "base"])
    assert downgraded.exit_code == 0, downgraded.output
    assert "behind head" in runner.invoke(cli, ["migrate", "current"]).output


def test_unknown_command_fails() -> None:
    result = runner.invoke(cli, ["frobnicate"])
    assert result.exit_code != 0


def test_create_admin_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = fresh_database_url("admin", tmp_path)
    monkeypatch.setenv("KEEL_DATABASE_URL", url)
    monkeypatch.setenv("KEEL_ADMIN_PASSWORD", "an-admin-password")
    monkeypatch.setenv("KEEL_PASSWORD_HASH_MEMORY_KIB", "1024")
    assert runner.invoke(cli, ["migrate", "upgrade"]).exit_code == 0
    first = runner.invoke(cli, ["create-admin", "--email", "Root@Example.com"])
    second = runner.invoke(cli, ["create-admin", "--email", "root@example.com"])
    assert first.exit_code == 0, first.output
    assert "Created admin root@example.com" in first.output
    assert second.exit_code == 0, second.output
    assert "password unchanged" in second.output
    assert "an-admin-password" not in first.output + second.output


def test_create_admin_prompts_without_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", fresh_database_url("prompt", tmp_path))
    monkeypatch.setenv("KEEL_PASSWORD_HASH_MEMORY_KIB", "1024")
    assert runner.invoke(cli, ["migrate", "upgrade"]).exit_code == 0
    result = runner.invoke(
        cli, ["create-admin", "--email", "p@example.com"], input="typed-password\ntyped-password\n"
    )
    assert result.exit_code == 0, result.output
    assert "Created admin p@example.com" in result.output


def test_create_admin_refuses_a_weak_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", fresh_database_url("weak", tmp_path))
    monkeypatch.setenv("KEEL_ADMIN_PASSWORD", "short")
    result = runner.invoke(cli, ["create-admin", "--email", "w@example.com"])
    assert result.exit_code == 2
    assert "password" in result.output
