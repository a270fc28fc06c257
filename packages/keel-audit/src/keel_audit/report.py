"""What every output format shares: rule metadata, totals, line counts."""

from __future__ import annotations

from keel_audit.model import Severity
from keel_audit.project import AuditResult, all_rules
from keel_audit.rules.base import Rule

SEVERITIES_DESCENDING = (Severity.ERROR, Severity.WARNING, Severity.INFO)


def rules_by_code() -> dict[str, type[Rule]]:
    return {rule.code: rule for rule in all_rules()}


def rule_name(code: str) -> str:
    rule = rules_by_code().get(code)
    return rule.name if rule else code


def line_count(result: AuditResult) -> int:
    return sum(module.line_count for module in result.project.modules)


def summary(result: AuditResult) -> str:
    counts = ", ".join(
        f"{result.count(severity)} {severity.label}" for severity in SEVERITIES_DESCENDING
    )
    extra = [f"{result.suppressed} suppressed inline"]
    if result.baselined:
        extra.append(f"{result.baselined} in the baseline")
    return f"{len(result.findings)} findings ({counts}); {', '.join(extra)}"
