"""`keel-audit` on the command line: exit codes, options, explain, baselines."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from keel_audit.cli import main

SAMPLE = Path(__file__).parent / "fixtures" / "sample_app"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "sample_app"
    shutil.copytree(SAMPLE, root)
    return root


@pytest.mark.parametrize(
    ("options", "status"),
    [
        ([], 1),  # any finding fails by default
        (["--fail-on", "error"], 1),  # KA201 is an error
        (["--fail-on", "never"], 0),
        (["--select", "KA104", "--fail-on", "error"], 0),  # only warnings left
        (["--select", "KA104", "--fail-on", "warning"], 1),
        (["--ignore", "KA1,KA2"], 0),  # nothing left
    ],
)
def test_exit_status_follows_fail_on(
    sample: Path, options: list[str], status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(sample), *options]) == status
    assert "findings (" in capsys.readouterr().out


@pytest.mark.parametrize(
    "options",
    [
        ["--format", "xml"],
        ["--fail-on", "fatal"],
        ["--fail-under", "many"],
        ["--no-such-option"],
    ],
)
def test_usage_errors_exit_2(sample: Path, options: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main([str(sample), *options])
    assert raised.value.code == 2


def test_missing_path_bad_config_and_bad_baseline_exit_2(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    (sample / "pyproject.toml").write_text('[tool.keel-audit]\nselect = "KA1"\nbogus = 1\n')
    assert main([str(sample)]) == 2
    assert "unknown key(s): bogus" in capsys.readouterr().err
    (sample / "pyproject.toml").write_text("")
    (tmp_path / "b.json").write_text("[]")
    assert main([str(sample), "--baseline", str(tmp_path / "b.json")]) == 2
    assert "not a keel-audit baseline" in capsys.readouterr().err


def test_write_baseline_then_only_new_findings_fail(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "baseline.json"
    assert main([str(sample), "--write-baseline", str(base)]) == 0
    assert "wrote 6 findings" in capsys.readouterr().err
    assert main([str(sample), "--baseline", str(base), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["total"] == 0
    assert report["summary"]["baselined"] == 6
    main_py = sample / "app" / "main.py"
    main_py.write_text(
        "import time\n" + main_py.read_text() + "\n\nasync def new():\n    time.sleep(1)\n"
    )
    assert main([str(sample), "--baseline", str(base), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(f["code"], f["line"]) for f in report["findings"]] == [("KA201", 29)]


def test_output_file_and_config_defaults(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.sarif"
    pyproject = sample / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + 'fail-on = "error"\n')
    assert main([str(sample), "--format", "sarif", "-o", str(out), "--select", "KA1"]) == 0
    assert json.loads(out.read_text())["version"] == "2.1.0"


def test_explain_and_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "ka201"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("KA201 blocking-call-in-async (error)")
    assert "How to fix it:" in text
    assert main(["explain", "KA999"]) == 2
    assert "unknown code" in capsys.readouterr().err
    assert main(["explain"]) == 2
    assert main(["rules"]) == 0
    table = capsys.readouterr().out
    assert "KA001  warning  bad-suppression" in table
    assert "KA201  error    blocking-call-in-async" in table


def test_console_script_runs_without_importing_the_project(sample: Path) -> None:
    (sample / "app" / "boom.py").write_text("raise SystemExit('imported!')\n")
    completed = subprocess.run(
        [sys.executable, "-m", "keel_audit", str(sample), "--fail-on", "never"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "imported!" not in completed.stdout + completed.stderr
    assert "KA201 blocking-call-in-async" in completed.stdout


@pytest.mark.parametrize(("as_program", "frozen"), [(True, 1), (False, 0)])
def test_the_final_collection_is_skipped_only_when_main_is_the_program(
    sample: Path, monkeypatch: pytest.MonkeyPatch, as_program: bool, frozen: int
) -> None:
    """`gc.freeze()` after the audit saves the exit-time scan of every AST node; a caller
    that passes `argv` keeps its objects collectable."""
    calls: list[None] = []
    monkeypatch.setattr("keel_audit.cli.gc.freeze", lambda: calls.append(None))
    options = [str(sample), "--fail-on", "never", "-o", str(sample / "report.txt")]
    monkeypatch.setattr(sys, "argv", ["keel-audit", *options])
    assert (main() if as_program else main(options)) == 0
    assert len(calls) == frozen
    assert "findings (" in (sample / "report.txt").read_text()
