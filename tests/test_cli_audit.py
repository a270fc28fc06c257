"""`keel audit [PATH]`: Keel's own CLI runs keel-audit with the same options and exit codes."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from keel.cli import cli

SAMPLE = (
    Path(__file__).parent.parent / "packages" / "keel-audit" / "tests" / "fixtures" / "sample_app"
)
"""keel-audit's own sample project: a generated project keeps the auditor's package unrenamed,
so this test (which is about Keel's CLI, and is renamed with it) lives here, not there."""


def test_keel_audit_reports_and_fails_on_findings() -> None:
    result = CliRunner().invoke(cli, ["audit", str(SAMPLE), "--fail-on", "error"])
    assert result.exit_code == 1
    assert "KA201 blocking-call-in-async" in result.output


def test_keel_audit_passes_options_through() -> None:
    result = CliRunner().invoke(
        cli, ["audit", str(SAMPLE), "--select", "KA104", "--fail-on", "error"]
    )
    assert result.exit_code == 0
    assert "1 findings (0 error, 1 warning, 0 info)" in result.output


def test_keel_audit_usage_errors_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", str(tmp_path / "missing")])
    assert result.exit_code == 2
