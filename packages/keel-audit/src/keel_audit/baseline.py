"""Baselines: record today's findings so a legacy project fails only on new ones.

A finding's fingerprint is a hash of its code, its file, the stripped text of its source
line and its message, plus a counter for identical ones in the same file. It holds no line
number, so code moving up or down (an import added above) keeps every fingerprint; editing
the flagged line itself makes the finding new, which is the point.

File format (JSON, sorted, stable under rewrites):

    {"schema": "keel-audit-baseline/1",
     "findings": {"<fingerprint>": {"code": "KA201", "path": "app/x.py", "message": "…"}}}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from keel_audit.model import Finding
from keel_audit.source import Project

SCHEMA = "keel-audit-baseline/1"


class BaselineError(ValueError):
    """The baseline file is unreadable or not a keel-audit baseline (a usage error)."""


def fingerprints(project: Project, findings: Sequence[Finding]) -> list[str]:
    """One fingerprint per finding, in the same order."""
    modules = {module.path: module for module in project.modules}
    seen: dict[str, int] = {}
    result: list[str] = []
    for finding in findings:
        module = modules.get(finding.location.path)
        text = module.line(finding.location.line).strip() if module else ""
        base = "\x1f".join((finding.code, finding.location.path, text, finding.message))
        occurrence = seen.get(base, 0)
        seen[base] = occurrence + 1
        digest = hashlib.sha256(f"{base}\x1f{occurrence}".encode()).hexdigest()
        result.append(digest[:32])
    return result


def write(path: Path, project: Project, findings: Sequence[Finding]) -> None:
    entries = {
        fingerprint: {
            "code": finding.code,
            "path": finding.location.path,
            "message": finding.message,
        }
        for fingerprint, finding in zip(fingerprints(project, findings), findings, strict=True)
    }
    document = {"schema": SCHEMA, "findings": dict(sorted(entries.items()))}
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read(path: Path) -> set[str]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BaselineError(f"cannot read baseline {path}: {error}") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise BaselineError(f"{path} is not a keel-audit baseline (schema {SCHEMA})")
    entries = document.get("findings")
    if not isinstance(entries, dict):
        raise BaselineError(f"{path}: 'findings' must be an object")
    return set(entries)
