"""The readable report: findings grouped by severity, each with its code line and chain."""

from __future__ import annotations

from keel_audit.project import AuditResult
from keel_audit.report import SEVERITIES_DESCENDING, line_count, rule_name, summary


def render(result: AuditResult) -> str:
    modules = {module.path: module for module in result.project.modules}
    out: list[str] = [
        f"keel-audit: {len(result.project.modules)} Python files, "
        f"{line_count(result):,} lines read",
    ]
    for severity in SEVERITIES_DESCENDING:
        group = [f for f in result.findings if f.severity == severity]
        if not group:
            continue
        out += ["", f"{severity.label.upper()} ({len(group)})"]
        for finding in group:
            out.append(
                f"  {finding.location}  {finding.code} {rule_name(finding.code)}: {finding.message}"
            )
            module = modules.get(finding.location.path)
            code = module.line(finding.location.line).strip() if module else ""
            if code:
                out.append(f"      {finding.location.line:>5} | {code}")
            for step in finding.chain:
                out.append(f"        -> {step.location.path}:{step.location.line}  {step.label}")
    if result.project.unparsed:
        count = len(result.project.unparsed)
        out += ["", f"NOT AUDITED ({count} file{'s' if count != 1 else ''})"]
        out += [f"  {path}: {reason}" for path, reason in sorted(result.project.unparsed)]
    if result.rule_errors:
        out += ["", "RULE ERRORS (a bug in keel-audit; the other rules ran)"]
        out += [f"  {code}: {error}" for code, error in result.rule_errors]
    out += ["", summary(result)]
    if result.score is not None:
        out += ["", *result.score.render_text()]
    return "\n".join(out) + "\n"
