"""`--format sarif`: SARIF 2.1.0 for code-scanning uploads.

Every rule is described in `tool.driver.rules` (so a viewer can show why and fix), each
result points into the repository relative to `%SRCROOT%`, a chain becomes a `codeFlow`,
and the baseline fingerprint is given as a partial fingerprint so uploads de-duplicate.
Files that could not be read are tool execution notifications.
"""

from __future__ import annotations

import json
from typing import Any

from keel_audit import __version__
from keel_audit.model import Location, Severity
from keel_audit.project import AuditResult
from keel_audit.report import rules_by_code

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _physical(location: Location) -> dict[str, Any]:
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": location.path, "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": location.line, "startColumn": location.col + 1},
        }
    }


def document(result: AuditResult) -> dict[str, Any]:
    rules = sorted(rules_by_code().values(), key=lambda rule: rule.code)
    index = {rule.code: position for position, rule in enumerate(rules)}
    results = []
    for finding, fingerprint in zip(result.findings, result.fingerprints, strict=True):
        entry: dict[str, Any] = {
            "ruleId": finding.code,
            "ruleIndex": index[finding.code],
            "level": _LEVEL[finding.severity],
            "message": {"text": finding.message},
            "locations": [_physical(finding.location)],
            "partialFingerprints": {"keelAudit/v1": fingerprint},
        }
        if finding.chain:
            steps = [
                {"location": {**_physical(step.location), "message": {"text": step.label}}}
                for step in finding.chain
            ]
            entry["codeFlows"] = [{"threadFlows": [{"locations": steps}]}]
        results.append(entry)
    notifications = [
        {
            "level": "warning",
            "message": {"text": reason},
            "locations": [_physical(Location(path, 1))],
        }
        for path, reason in sorted(result.project.unparsed)
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "keel-audit",
                        "version": __version__,
                        "informationUri": "https://pypi.org/project/keel-audit/",
                        "rules": [
                            {
                                "id": rule.code,
                                "name": rule.name,
                                "shortDescription": {"text": rule.summary},
                                "fullDescription": {"text": rule.why},
                                "help": {"text": f"{rule.why}\n\nFix: {rule.fix}"},
                                "defaultConfiguration": {"level": _LEVEL[rule.severity]},
                            }
                            for rule in rules
                        ],
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": not result.rule_errors,
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }


def render(result: AuditResult) -> str:
    return json.dumps(document(result), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
