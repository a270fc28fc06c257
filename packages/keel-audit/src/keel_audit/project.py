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
from keel_audit.config import Config, read_pyproject
from keel_audit.facts import take_facts
from keel_audit.model import Finding, Severity
from keel_audit.rules import ALL_RULES
from keel_audit.rules.base import Rule
from keel_audit.source import Module, Project


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
        return [], _describe(error)


def _describe(error: Exception) -> str:
    where = traceback.extract_tb(error.__traceback__)[-1]
    return f"{type(error).__name__}: {error} (at {Path(where.filename).name}:{where.lineno})"


@contextmanager
def _without_cycle_collector() -> Iterator[None]:
    """The audit allocates millions of AST nodes (each tree lives until its module's facts
    are taken, or in the cache of trees read again): the cyclic collector would rescan them
    again and again (it took ~40 % of the run when trees were kept), and they hold no
    reference cycles for it to find (a dropped tree is freed by reference counting). Paused
    for the audit, then restored."""
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
    keep_trees: bool = False,
) -> AuditResult:
    """`keep_trees`: keep every module's tree for the whole audit (the report is the same
    either way, only memory differs; the tests compare the two)."""
    with _without_cycle_collector():
        return _audit(root, config, baseline, with_score, keep_trees)


class _Streamed:
    """The rules that read one module at a time, run on each module as it is parsed; then
    the module's facts are taken and its tree and source text are dropped (see docs/audit.md
    "Speed": memory stays flat as the tree grows)."""

    def __init__(self, root: Path, config: Config, keep_trees: bool) -> None:
        self.placeholder = Project(root, [], {}, [], [])  # no rule here reads the project
        self.rules = [rule() for rule in ALL_RULES if config.enabled(rule.code) and rule.streams()]
        self.found: dict[str, list[Finding]] = {rule.code: [] for rule in self.rules}
        self.errors: dict[str, str] = {}
        self.keep_trees = keep_trees

    def __call__(self, module: Module) -> None:
        for rule in self.rules:
            if rule.code in self.errors:
                continue
            try:
                self.found[rule.code].extend(rule.check_module(self.placeholder, module))
            except Exception as error:  # the rule loses its findings, not the audit
                self.errors[rule.code] = _describe(error)
                self.found[rule.code] = []
        take_facts(module)
        module.imports, module.top_level_names  # noqa: B018 (kept: names resolve from them)
        if not self.keep_trees:
            module.drop_tree()


def _audit(
    root: Path,
    config: Config | None,
    baseline: set[str] | None,
    with_score: bool,
    keep_trees: bool,
) -> AuditResult:
    if with_score:
        _import_score()  # (registers its fact extractors before the modules are read)
    root = root.resolve()
    config = config or Config.from_pyproject(read_pyproject(root))
    streamed = _Streamed(root, config, keep_trees)
    project = Project.load(root, config, on_module=streamed)
    known = {rule.code for rule in all_rules()}
    ran: set[str] = set()
    raw: list[Finding] = []
    errors: list[tuple[str, str]] = []
    for rule_class in ALL_RULES:
        if not config.enabled(rule_class.code):
            continue
        ran.add(rule_class.code)
        if rule_class.code in streamed.found:
            found = streamed.found[rule_class.code]
            error = streamed.errors.get(rule_class.code)
        else:
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


def _import_score() -> Any:
    try:
        from keel_audit import score  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    return score


def _score(project: Project, findings: Sequence[Finding]) -> Any:
    score = _import_score()
    if score is None:
        return None
    try:
        return score.score(project, findings)
    except Exception:  # (the findings stand; the score is left out, said so)
        return None
