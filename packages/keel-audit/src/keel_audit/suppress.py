"""Inline suppressions: `# keel-audit: ignore[KA201] reason why this is fine`.

A suppression names its codes (comma-separated) and gives a reason: one without a reason,
or without codes, or naming an unknown code, is itself a finding (KA001), so a suppression
is always a decision someone can read. One that matches nothing is reported too (KA002), so
they do not outlive the code they excused. A suppression covers findings on its own line,
or, written alone on a line, on the next line that is not a comment.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from keel_audit.facts import extractor, module_fact
from keel_audit.model import Finding, Severity
from keel_audit.rules.base import Rule
from keel_audit.source import Module, Project

_MARK = "keel-audit:"
_PATTERN = re.compile(
    r"#\s*keel-audit:\s*(?P<verb>[a-z-]+)(?:\[(?P<codes>[^\]]*)\])?(?P<reason>.*)$"
)
_CODE = re.compile(r"^KA\d{3}$")


class BadSuppression(Rule):
    code = "KA001"
    name = "bad-suppression"
    severity = Severity.WARNING
    summary = "An inline suppression without a reason, without codes, or with an unknown code."
    why = (
        "A suppression is a decision that a finding does not apply here. Without the codes it "
        "hides everything on the line, including findings nobody has seen; without a reason "
        "the next reader cannot tell a considered exception from a silenced warning."
    )
    fix = (
        "Name the codes and say why, on the line of the finding or alone on the line above:\n"
        "    requests.get(url)  # keel-audit: ignore[KA201] runs in the CLI, no event loop"
    )


class UnusedSuppression(Rule):
    code = "KA002"
    name = "unused-suppression"
    severity = Severity.INFO
    summary = "An inline suppression that matches no finding."
    why = (
        "The code it excused has changed or gone; left in place it would silently hide a "
        "future finding of that kind on the same line."
    )
    fix = "Delete the suppression comment."


ENGINE_RULES: tuple[type[Rule], ...] = (BadSuppression, UnusedSuppression)


@dataclass
class Suppression:
    line: int  # where the comment is
    target: int  # the line whose findings it covers
    codes: tuple[str, ...]
    reason: str
    used: bool = False


def _comments(module: Module) -> Iterator[tuple[int, str, bool]]:
    """(line, comment text, alone on its line) for comments mentioning keel-audit."""
    text = "\n".join(module.lines) + "\n"
    if _MARK not in text:
        return
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT and _MARK in token.string:
                alone = not token.line[: token.start[1]].strip()
                yield token.start[0], token.string, alone
    except (tokenize.TokenError, SyntaxError):  # syntax newer than this tokenizer
        for number, line in enumerate(module.lines, start=1):
            index = line.find("#")
            if index >= 0 and _MARK in line[index:]:
                yield number, line[index:], not line[:index].strip()


def _target(module: Module, line: int) -> int:
    for number in range(line + 1, len(module.lines) + 1):
        stripped = module.lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            return number
    return line


@extractor()
def suppression_comments(module: Module) -> tuple[tuple[int, str, int], ...]:
    """(line, comment, the line it covers) of each keel-audit comment: a fact, taken while
    the module's source is in memory (the audit lets the source go once it is parsed)."""
    return tuple(
        (line, comment, _target(module, line) if alone else line)
        for line, comment, alone in _comments(module)
    )


def collect(module: Module, known: set[str]) -> tuple[list[Suppression], list[Finding]]:
    suppressions: list[Suppression] = []
    problems: list[Finding] = []
    bad = BadSuppression()
    for line, comment, target in module_fact(module, suppression_comments):
        match = _PATTERN.search(comment)
        if match is None or match.group("verb") != "ignore":
            problems.append(
                bad.finding(module, line, "unreadable suppression: write ignore[CODE] reason")
            )
            continue
        codes = tuple(c.strip() for c in (match.group("codes") or "").split(",") if c.strip())
        reason = match.group("reason").strip().lstrip(":-\u2014\u2013 ").strip()
        if not codes:
            problems.append(bad.finding(module, line, "suppression names no code: ignore[CODE]"))
            continue
        unknown = [c for c in codes if not _CODE.match(c) or c not in known]
        if unknown:
            problems.append(
                bad.finding(module, line, f"suppression names unknown code {', '.join(unknown)}")
            )
        if not reason:
            problems.append(
                bad.finding(
                    module, line, f"suppression of {', '.join(codes)} gives no reason after ]"
                )
            )
            continue
        suppressions.append(Suppression(line, target, codes, reason))
    return suppressions, problems


def apply(
    project: Project, findings: Iterable[Finding], known: set[str], ran: set[str]
) -> tuple[list[Finding], int]:
    """(findings left plus suppression findings, number suppressed). `ran`: codes whose rule
    ran, so only their unused suppressions are reported."""
    by_path: dict[str, list[Finding]] = {}
    for finding in findings:
        by_path.setdefault(finding.location.path, []).append(finding)
    kept: list[Finding] = []
    suppressed = 0
    unused = UnusedSuppression()
    modules = {module.path: module for module in project.modules}
    for path in sorted(set(by_path) | set(modules)):
        module = modules.get(path)
        if module is None:
            kept.extend(by_path.get(path, []))
            continue
        suppressions, problems = collect(module, known)
        kept.extend(problems)
        table: dict[int, list[Suppression]] = {}
        for suppression in suppressions:
            table.setdefault(suppression.target, []).append(suppression)
        for finding in by_path.get(path, []):
            match = next(
                (s for s in table.get(finding.location.line, []) if finding.code in s.codes),
                None,
            )
            if match is None:
                kept.append(finding)
            else:
                match.used = True
                suppressed += 1
        for suppression in suppressions:
            idle = [c for c in suppression.codes if c in ran]
            if not suppression.used and idle:
                kept.append(
                    unused.finding(
                        module,
                        suppression.line,
                        f"suppression of {', '.join(idle)} matches nothing",
                    )
                )
    return kept, suppressed
