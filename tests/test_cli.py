"""The `keel` command: check-config, migrate, serve's refusals, and the features' commands."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from keel import cli as cli_module
from keel.cli import cli, feature_commands
from keel.features.registry import ENABLED, command_modules
from keel.settings import Settings
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


def test_check_config_lists_every_invalid_field_and_every_other_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two invalid fields, an impossible combination and production problems: one run, one
    list, instead of a fix-and-retry round per problem (a feature's own problems join the
    list: tests/features/payments/test_settings.py)."""
    monkeypatch.setenv("KEEL_ENVIRONMENT", "production")
    monkeypatch.setenv("KEEL_ACCESS_TOKEN_MINUTES", "120")
    monkeypatch.setenv("KEEL_PORT", "0")
    monkeypatch.setenv("KEEL_JOB_BROKER", "redis")  # without KEEL_REDIS_URL
    result = runner.invoke(cli, ["check-config"])
    assert result.exit_code == 2
    assert "KEEL_ACCESS_TOKEN_MINUTES" in result.output
    assert "KEEL_PORT" in result.output
    assert "KEEL_JOB_BROKER=redis needs KEEL_REDIS_URL" in result.output
    assert "KEEL_JWT_SECRET is not set" in result.output
    assert "SQLite" in result.output
    assert "Traceback" not in result.output


def test_check_config_shows_derived_values_and_an_unset_secret_as_such(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = runner.invoke(cli, ["check-config"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in result.output.splitlines() if "=" in line)
    assert lines["KEEL_LOG_JSON"] == "false (default outside production)"
    assert lines["KEEL_AUTO_MIGRATE"] == "true (default outside production)"
    assert lines["KEEL_JOB_BROKER"] == "embedded (no KEEL_REDIS_URL)"
    assert lines["KEEL_JWT_SECRET"] == "not set (a random one per process in development)"
    assert lines["KEEL_REDIS_URL"] == "not set"
    assert "None" not in result.output


def test_check_config_piped_is_not_cut_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    long_url = "postgresql+asyncpg://keel@" + "a" * 90 + ".example.com:5432/keel"
    monkeypatch.setenv("KEEL_DATABASE_URL", long_url)
    result = runner.invoke(cli, ["check-config"])  # CliRunner's output is not a terminal
    assert result.exit_code == 0, result.output
    assert f"KEEL_DATABASE_URL={long_url}" in result.output.splitlines()


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


def test_openapi_writes_the_document_without_a_server(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    result = runner.invoke(cli, ["openapi", "--output", str(target)])
    assert result.exit_code == 0, result.output
    document = json.loads(target.read_text(encoding="utf-8"))
    assert document["openapi"].startswith("3.")
    assert document["paths"]["/api/v1/auth/register"]["post"]["operationId"] == "auth-register"


def test_openapi_on_stdout_is_only_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEL_JWT_SECRET", raising=False)  # would log a warning at start-up
    result = runner.invoke(cli, ["openapi"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["info"]["title"]


def test_openapi_refuses_an_unwritable_output(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["openapi", "--output", str(tmp_path / "missing" / "x.json")])
    assert result.exit_code == 2
    assert "Cannot write" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


# -- the features' commands, found by name -----------------------------------------------------

IMPORTED_FEATURE_MODULES = """
import sys
from keel.cli import cli
try:
    cli(sys.argv[1:], prog_name="keel")
except SystemExit:
    pass
print(*sorted(name for name in sys.modules if name.startswith("keel.features")), file=sys.stderr)
"""


def imported_feature_modules(*argv: str) -> set[str]:
    """The `keel.features` modules a fresh `keel <argv>` process has imported when it ends."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED_FEATURE_MODULES, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return set(done.stderr.strip().splitlines()[-1].split())


@pytest.mark.parametrize("argv", [["migrate", "--help"], ["serve", "--help"]])
def test_a_core_command_imports_no_feature(argv: list[str]) -> None:
    """Only the registry, which finds the features' commands on disk without importing them."""
    assert imported_feature_modules(*argv) == {"keel.features", "keel.features.registry"}


def test_a_command_that_reads_settings_imports_only_the_features_settings() -> None:
    """The one settings class is composed from the features' `settings.py` (keel/settings.py):
    reading it imports those modules and the packages holding them, never a router or model."""
    settings_modules = {
        kind.__module__ for kind in Settings.__mro__ if kind.__module__.startswith("keel.features.")
    }
    packages = {module.rpartition(".")[0] for module in settings_modules}
    imported = imported_feature_modules("check-config")
    assert imported == {"keel.features", "keel.features.registry", *packages, *settings_modules}


def test_the_command_list_imports_the_features_command_modules_and_nothing_else() -> None:
    """`keel --help` lists every command, the features' too: it imports their `cli.py`
    modules (and the packages holding them), never a router, a model or a service."""
    modules = set(command_modules())
    packages = {module.rpartition(".")[0] for module in modules}
    imported = imported_feature_modules("--help")
    assert imported == {"keel.features", "keel.features.registry", *packages, *modules}


def test_command_modules_are_the_enabled_features_cli_files() -> None:
    for module in command_modules():
        package, _, name = module.rpartition(".")
        assert name == "cli"
        assert package.removeprefix("keel.features.") in ENABLED
        folder = Path(sys.modules["keel.features"].__path__[0], package.split(".")[-1])
        assert (folder / "cli.py").is_file()


def test_every_feature_command_is_listed_and_runs_by_its_name() -> None:
    listed = runner.invoke(cli, ["--help"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    for name in feature_commands():
        assert name in listed.output
        shown = runner.invoke(cli, [name, "--help"])
        assert shown.exit_code == 0, shown.output
        assert f"Usage: keel {name}" in shown.output or f"Usage: root {name}" in shown.output


@pytest.fixture
def no_feature_commands(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`keel` as in a project whose features have no `cli.py`."""
    monkeypatch.setattr(cli_module, "command_modules", lambda: ())
    feature_commands.cache_clear()
    yield
    feature_commands.cache_clear()


@pytest.mark.usefixtures("no_feature_commands")
def test_a_missing_feature_s_command_is_no_command() -> None:
    for name in ("import-products", "frobnicate"):
        result = runner.invoke(cli, [name])
        assert result.exit_code == 2, result.output
        assert "No such command" in result.output
    listed = runner.invoke(cli, ["--help"], terminal_width=200)
    assert "import-products" not in listed.output
    assert "migrate" in listed.output


def test_a_core_command_name_is_never_taken_by_a_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    """Core's commands are looked up first and listed once: a feature's command of the same
    name (an `openapi` that writes something else) never runs in its place."""
    impostor = typer.Typer()

    @impostor.command("openapi")
    def openapi() -> None:
        """Not core's openapi."""

    monkeypatch.setattr(
        cli_module, "feature_commands", typer.main.get_group(impostor).commands.copy
    )
    result = runner.invoke(cli, ["openapi", "--help"])
    assert result.exit_code == 0
    assert "Write the OpenAPI document" in result.output
    listed = runner.invoke(cli, ["--help"], terminal_width=200)
    assert listed.output.count(" openapi ") == 1, listed.output
    assert "Not core's" not in listed.output
