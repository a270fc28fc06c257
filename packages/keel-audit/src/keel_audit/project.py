"""The audit itself: load the project, run the rules, apply config, suppressions, baseline."""

from __future__ import annotations

import dataclasses
import gc
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel_audit import baseline as baselines
from keel_audit import suppress
from keel_audit.config import Config
from keel_audit.model import Finding, Severity
from keel_audit.rules import ALL_RULES
from keel_audit.rules.base import Rule
from keel_audit.source import Project


@dataclass
class AuditResult:
    project: Project
    config: Config
    findings: list[Finding]  # sorted, after config, suppressions and baseline
    fingerprints: list[str]  # one per finding
    suppressed: int = 0
    baselined: int = 0
    rule_errors: list[tuple[str, str]] = field(default_factory=list)  # code, what went wrong
    score: Any = None  # keel_audit.score.ScoreReport when that module is present

    def count(self, severity: Severity) -> int:
        return sum(1 for finding in self.findings if finding.severity == severity)


def all_rules() -> tuple[type[Rule], ...]:
    return (*suppress.ENGINE_RULES, *ALL_RULES)


def _run_rule(rule: Rule, project: Project) -> tuple[list[Finding], str | None]:
    """A rule that crashes on odd code loses its findings, not the audit."""
    try:
        return list(rule.check(project)), None
    except Exception as error:  # reported, never a traceback
        where = traceback.extract_tb(error.__traceback__)[-1]
        return (
            [],
            f"{type(error).__name__}: {error} (at {Path(where.filename).name}:{where.lineno})",
        )


@contextmanager
def _without_cycle_collector() -> Iterator[None]:
    """The audit allocates millions of AST nodes and keeps them: the cyclic collector would
    rescan them all, again and again, while they pile up (it took ~40 % of the run), and
    they hold no reference cycles for it to find. Paused for the audit, then restored."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run_audit(
    root: Path,
    config: Config | None = None,
    *,
    baseline: set[str] | None = None,
    with_score: bool = True,
) -> AuditResult:
    with _without_cycle_collector():
        return _audit(root, config, baseline, with_score)


def _audit(
    root: Path, config: Config | None, baseline: set[str] | None, with_score: bool
) -> AuditResult:
    project = Project.load(root, config)
    config = config or Config.from_pyproject(project.pyproject)
    known = {rule.code for rule in all_rules()}
    ran: set[str] = set()
    raw: list[Finding] = []
    errors: list[tuple[str, str]] = []
    for rule_class in ALL_RULES:
        if not config.enabled(rule_class.code):
            continue
        ran.add(rule_class.code)
        found, error = _run_rule(rule_class(), project)
        if error:
            errors.append((rule_class.code, error))
        raw.extend(found)
    findings, suppressed = suppress.apply(project, raw, known, ran)
    findings = sorted(
        {
            dataclasses.replace(f, severity=config.severity_for(f.code, f.severity))
            for f in findings
            if config.enabled(f.code) and not config.ignored_in(f.code, f.location.path)
        },
        key=Finding.sort_key,
    )
    prints = baselines.fingerprints(project, findings)
    baselined = 0
    if baseline is not None:
        kept = [(f, p) for f, p in zip(findings, prints, strict=True) if p not in baseline]
        baselined = len(findings) - len(kept)
        findings = [f for f, _ in kept]
        prints = [p for _, p in kept]
    result = AuditResult(project, config, findings, prints, suppressed, baselined, errors)
    if with_score:
        result.score = _score(project, findings)
    return result


def _score(project: Project, findings: Sequence[Finding]) -> Any:
    try:
        from keel_audit import score  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    try:
        return score.score(project, findings)
    except Exception:  # (the findings stand; the score is left out, said so)
        return None
