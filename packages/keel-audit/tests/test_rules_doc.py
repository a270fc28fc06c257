"""docs/audit-rules.md and `keel-audit explain` tell the same story: one source, the classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel_audit.explain import explain
from keel_audit.report import rules_by_code
from keel_audit.rulesdoc import END, START, current_block, main, replace_block, rules_markdown

DOC = Path(__file__).resolve().parents[3] / "docs" / "audit-rules.md"


def test_the_rules_page_is_generated_from_the_rule_classes() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert current_block(text) == rules_markdown(), (
        "docs/audit-rules.md is stale: run `python -m keel_audit.rulesdoc docs/audit-rules.md`"
    )


@pytest.mark.parametrize("code", sorted(rules_by_code()))
def test_every_rule_is_documented_with_why_and_fix(code: str) -> None:
    rule = rules_by_code()[code]
    block = current_block(DOC.read_text(encoding="utf-8"))
    assert f"### {code}\n" in block
    assert f"**Why.** {rule.why}" in block
    assert f"**Fix.** {rule.fix}" in block
    assert rule.summary in (explain(code) or "")


def test_the_page_names_the_real_projects_it_was_tried_on() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Tried on real projects", 1)[1]
    projects = ["full-stack-fastapi-template", "polar", "dispatch", "minimal-fastapi-postgres",
                "fastapi-users", "realworld"]  # fmt: skip
    assert all(name in section for name in projects)


def test_regenerating_rewrites_only_the_block(tmp_path: Path) -> None:
    page = tmp_path / "rules.md"
    page.write_text(f"intro\n{START}\nSTALE-BLOCK\n{END}\noutro\n", encoding="utf-8")
    assert main([str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("intro\n")
    assert text.endswith(f"{END}\noutro\n")
    assert "STALE-BLOCK" not in text
    assert current_block(text) == rules_markdown()


def test_a_page_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="marker not found"):
        replace_block("no markers here", "x")
    assert main([]) == 2
