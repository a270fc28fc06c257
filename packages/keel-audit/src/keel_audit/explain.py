"""`keel-audit explain CODE` and `keel-audit rules`: the documentation of each rule."""

from __future__ import annotations

import textwrap

from keel_audit.report import rules_by_code


def explain(code: str) -> str | None:
    rule = rules_by_code().get(code.strip().upper())
    if rule is None:
        return None
    wrap = textwrap.TextWrapper(width=88)
    body = [
        f"{rule.code} {rule.name} ({rule.severity.label})",
        "",
        rule.summary,
        "",
        "Why it matters:",
        *[wrap.fill(paragraph) for paragraph in rule.why.split("\n\n")],
        "",
        "How to fix it:",
        rule.fix,
        "",
        f"Suppress one occurrence: # keel-audit: ignore[{rule.code}] <your reason>",
    ]
    return "\n".join(body) + "\n"


def rule_table() -> str:
    rows = [
        f"{rule.code}  {rule.severity.label:<7}  {rule.name:<32}  {rule.summary}"
        for rule in sorted(rules_by_code().values(), key=lambda rule: rule.code)
    ]
    return "\n".join(rows) + "\n"
