"""GitHub Actions workflow commands: one annotation per finding."""

from __future__ import annotations

from keel_audit.model import Severity
from keel_audit.project import AuditResult
from keel_audit.report import rule_name, summary

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def render(result: AuditResult) -> str:
    out: list[str] = []
    for finding in result.findings:
        message = finding.message
        if finding.chain:
            hops = " -> ".join(
                f"{s.label} ({s.location.path}:{s.location.line})" for s in finding.chain
            )
            message += f"\nchain: {hops}"
        location = finding.location
        props = ",".join(
            (
                f"file={_property(location.path)}",
                f"line={location.line}",
                f"col={location.col + 1}",
                f"title={_property(f'{finding.code} {rule_name(finding.code)}')}",
            )
        )
        out.append(f"::{_LEVEL[finding.severity]} {props}::{_data(message)}")
    for path, reason in sorted(result.project.unparsed):
        out.append(f"::warning file={_property(path)},title=keel-audit::{_data(reason)}")
    out.append(_data(summary(result)))
    return "\n".join(out) + "\n"
