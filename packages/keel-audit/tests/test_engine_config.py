"""[tool.keel-audit], inline suppressions and baselines."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import write_files
from keel_audit import baseline
from keel_audit.config import Config, ConfigError
from keel_audit.model import Finding, Severity
from keel_audit.project import run_audit

Audit = Callable[..., list[Finding]]
BLOCKING = "import time\n\nasync def a():\n    time.sleep(1)\n\nasync def b():\n    time.sleep(2)\n"


def codes(findings: list[Finding]) -> list[tuple[str, str, int]]:
    return [(f.code, f.location.path, f.location.line) for f in findings]


def test_select_ignore_per_file_ignores_and_severity(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "pyproject.toml": """
                [tool.keel-audit]
                select = ["KA2"]
                ignore = ["KA202"]
                exclude = ["vendored"]

                [tool.keel-audit.per-file-ignores]
                "scripts/*" = ["KA201"]

                [tool.keel-audit.severity]
                KA201 = "warning"
            """,
            "app.py": BLOCKING,
            "scripts/tool.py": BLOCKING,
            "vendored/lib.py": BLOCKING,
        },
    )
    result = run_audit(tmp_path)
    assert codes(result.findings) == [("KA201", "app.py", 4), ("KA201", "app.py", 7)]
    assert {f.severity for f in result.findings} == {Severity.WARNING}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('select = "KA1"\nbogus = 1', "unknown key(s): bogus"),
        ("select = [1]", "select must be a list of strings"),
        ('[tool.keel-audit.severity]\nKA201 = "fatal"', "unknown severity 'fatal'"),
        ("max-file-bytes = -1", "max-file-bytes must be a positive integer"),
        ('fail-under = "high"', "fail-under must be an integer"),
    ],
)
def test_bad_configuration_is_a_config_error(table: str, message: str) -> None:
    import tomllib

    text = table if table.startswith("[") else f"[tool.keel-audit]\n{table}"
    if table.startswith("[tool.keel-audit.severity]"):
        text = table
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Config.from_pyproject(tomllib.loads(text))


def test_src_roots_name_modules_below_them(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "pyproject.toml": '[tool.keel-audit]\nsrc = ["backend"]\n',
            "backend/app/main.py": "from app.helpers import slow\n\nasync def f():\n    slow()\n",
            "backend/app/helpers.py": "import time\n\ndef slow():\n    time.sleep(1)\n",
        },
    )
    result = run_audit(tmp_path)
    assert sorted(m.name for m in result.project.modules) == ["app.helpers", "app.main"]
    assert codes(result.findings) == [("KA201", "backend/app/main.py", 4)]


def test_inline_suppressions(audit: Audit) -> None:
    source = """
        import time

        async def a():
            time.sleep(1)  # keel-audit: ignore[KA201] the CLI runs this before the loop serves
            # keel-audit: ignore[KA201] -- same, on the line above
            time.sleep(2)
            time.sleep(3)  # keel-audit: ignore[KA201]
            time.sleep(4)  # keel-audit: ignore[KA999] a typo in the code
            time.sleep(5)  # keel-audit: ignore the whole line
            note = "# keel-audit: ignore[KA201] inside a string is not a comment"
            time.sleep(6)  # keel-audit: ignore[KA101] the wrong rule
            return note
    """
    found = codes(audit({"app.py": source}))
    assert found == [
        ("KA001", "app.py", 8),
        ("KA201", "app.py", 8),
        ("KA001", "app.py", 9),
        ("KA201", "app.py", 9),
        ("KA001", "app.py", 10),
        ("KA201", "app.py", 10),
        ("KA002", "app.py", 12),
        ("KA201", "app.py", 12),
    ]
    messages = [f.message for f in audit({"app.py": source}) if f.code in {"KA001", "KA002"}]
    assert messages == [
        "suppression of KA201 gives no reason after ]",
        "suppression names unknown code KA999",
        "suppression names no code: ignore[CODE]",
        "suppression of KA101 matches nothing",
    ]


def test_a_suppression_that_matches_nothing_is_reported(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {"app.py": "async def a():\n    return 1  # keel-audit: ignore[KA201] was slow once\n"},
    )
    result = run_audit(tmp_path)
    assert codes(result.findings) == [("KA002", "app.py", 2)]
    assert result.findings[0].message == "suppression of KA201 matches nothing"
    assert result.suppressed == 0


def test_baseline_hides_known_findings_across_line_moves(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.py": BLOCKING})
    first = run_audit(tmp_path)
    path = tmp_path / "baseline.json"
    baseline.write(path, first.project, first.findings)
    document = json.loads(path.read_text())
    assert document["schema"] == "keel-audit-baseline/1"
    assert len(document["findings"]) == 2

    moved = "import os\nimport sys\n\n" + BLOCKING + "\nasync def c():\n    time.sleep(9)\n"
    write_files(tmp_path, {"app.py": moved})
    again = run_audit(tmp_path, baseline=baseline.read(path))
    assert codes(again.findings) == [("KA201", "app.py", 13)]
    assert again.baselined == 2


def test_identical_findings_on_identical_lines_are_counted_apart(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.py": "import time\nasync def a():\n    time.sleep(1)\n"})
    first = run_audit(tmp_path)
    path = tmp_path / "baseline.json"
    baseline.write(path, first.project, first.findings)
    write_files(
        tmp_path, {"app.py": "import time\nasync def a():\n    time.sleep(1)\n    time.sleep(1)\n"}
    )
    again = run_audit(tmp_path, baseline=baseline.read(path))
    assert codes(again.findings) == [("KA201", "app.py", 4)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read baseline"),
        ('{"schema": "other"}', "is not a keel-audit baseline"),
        ('{"schema": "keel-audit-baseline/1", "findings": []}', "'findings' must be an object"),
    ],
)
def test_bad_baselines_are_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(content)
    with pytest.raises(baseline.BaselineError, match=message):
        baseline.read(path)
