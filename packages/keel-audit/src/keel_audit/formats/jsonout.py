"""`--format json`: the report as one JSON document, schema "keel-audit-report/1".

The schema is `report.schema.json` beside this file (JSON Schema draft 2020-12) and is
documented in docs/audit.md. A new field may be added within version 1; removing or
changing the meaning of one bumps the version. Paths are relative to the audited root;
lines are 1-based, columns 1-based; keys are sorted and nothing depends on the clock.
"""

from __future__ import annotations

import json
from typing import Any

from keel_audit import __version__
from keel_audit.model import Location, Severity
from keel_audit.project import AuditResult
from keel_audit.report import line_count, rule_name

SCHEMA = "keel-audit-report/1"


def _where(location: Location) -> dict[str, Any]:
    return {"path": location.path, "line": location.line, "column": location.col + 1}


def document(result: AuditResult) -> dict[str, Any]:
    findings = [
        {
            "code": f.code,
            "rule": rule_name(f.code),
            "severity": f.severity.label,
            **_where(f.location),
            "message": f.message,
            "chain": [{**_where(s.location), "label": s.label} for s in f.chain],
            "fingerprint": fingerprint,
        }
        for f, fingerprint in zip(result.findings, result.fingerprints, strict=True)
    ]
    return {
        "schema": SCHEMA,
        "tool": {"name": "keel-audit", "version": __version__},
        "files": len(result.project.modules),
        "lines": line_count(result),
        "findings": findings,
        "summary": {
            "total": len(result.findings),
            **{severity.label: result.count(severity) for severity in Severity},
            "suppressed": result.suppressed,
            "baselined": result.baselined,
        },
        "not_audited": [
            {"path": path, "reason": reason} for path, reason in sorted(result.project.unparsed)
        ],
        "rule_errors": [{"code": code, "error": error} for code, error in result.rule_errors],
        "score": result.score.to_json() if result.score is not None else None,
    }


def render(result: AuditResult) -> str:
    return json.dumps(document(result), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
