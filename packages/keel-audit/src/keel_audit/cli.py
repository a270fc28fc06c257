"""The `keel-audit` command.

    keel-audit [PATH] [--format console|json|sarif|github] [--output FILE]
               [--fail-on info|warning|error|never] [--fail-under N]
               [--select CODES] [--ignore CODES] [--baseline FILE] [--write-baseline FILE]
    keel-audit explain CODE
    keel-audit rules

Exit status: 0 clean; 1 findings at or above --fail-on (default: any finding), or a score
below --fail-under; 2 a usage error (bad option, path, configuration or baseline).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
from collections.abc import Sequence
from pathlib import Path

from keel_audit import __version__
from keel_audit import baseline as baselines
from keel_audit.config import Config, ConfigError, read_pyproject
from keel_audit.explain import explain, rule_table
from keel_audit.formats import FORMATS
from keel_audit.model import Severity
from keel_audit.project import run_audit

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"keel-audit: error: {message}\n")
        raise SystemExit(USAGE_ERROR)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="keel-audit",
        description="Audit a FastAPI project for production readiness (static: nothing runs).",
        epilog="Also: `keel-audit explain CODE`, `keel-audit rules`.",
    )
    parser.add_argument("path", nargs="?", default=".", help="project root (default: .)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="console")
    parser.add_argument("--output", "-o", type=Path, help="write the report here, not stdout")
    parser.add_argument(
        "--fail-on",
        choices=["info", "warning", "error", "never"],
        help="exit 1 on findings at or above this severity (default: info, i.e. any)",
    )
    parser.add_argument("--fail-under", type=int, metavar="N", help="exit 1 if score < N")
    parser.add_argument("--select", help="comma-separated code prefixes to run")
    parser.add_argument("--ignore", help="comma-separated code prefixes not to report")
    parser.add_argument("--baseline", type=Path, help="report only findings not in this file")
    parser.add_argument("--write-baseline", type=Path, help="record every finding; exit 0")
    parser.add_argument("--version", action="version", version=f"keel-audit {__version__}")
    return parser


def _codes(text: str | None) -> tuple[str, ...]:
    return tuple(c.strip().upper() for c in (text or "").split(",") if c.strip())


def _skip_final_collection() -> None:
    """The interpreter runs one last cyclic collection on exit, over every object still
    alive: the audit's millions of AST nodes (a second per 100,000 lines). They hold no
    cycles, so moving them out of the collector's sight (`gc.freeze`) costs nothing and
    saves that second. Only when `main` is the program: a caller's objects are its own."""
    gc.freeze()


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["rules"]:
        sys.stdout.write(rule_table())
        return 0
    if args_list[:1] == ["explain"]:
        if len(args_list) != 2:
            sys.stderr.write("usage: keel-audit explain CODE\n")
            return USAGE_ERROR
        text = explain(args_list[1])
        if text is None:
            sys.stderr.write(
                f"keel-audit: unknown code {args_list[1]!r} (see `keel-audit rules`)\n"
            )
            return USAGE_ERROR
        sys.stdout.write(text)
        return 0
    args = _parser().parse_args(args_list)
    root = Path(args.path)
    if not root.is_dir():
        sys.stderr.write(f"keel-audit: {root} is not a directory\n")
        return USAGE_ERROR
    try:
        config = Config.from_pyproject(read_pyproject(root.resolve()))
        if args.select or args.ignore:
            config = dataclasses.replace(
                config,
                select=_codes(args.select) or config.select,
                ignore=config.ignore + _codes(args.ignore),
            )
        fail_on_text = args.fail_on or (config.fail_on.label if config.fail_on else "info")
        fail_on = None if fail_on_text == "never" else Severity.parse(fail_on_text)
        fail_under = args.fail_under if args.fail_under is not None else config.fail_under
        known = baselines.read(args.baseline) if args.baseline else None
    except (ConfigError, baselines.BaselineError) as error:
        sys.stderr.write(f"keel-audit: {error}\n")
        return USAGE_ERROR
    result = run_audit(root, config, baseline=known)
    if argv is None:  # the process ends with this audit: see `_skip_final_collection`
        _skip_final_collection()
    report = FORMATS[args.format](result)
    if args.output:
        try:
            args.output.write_text(report, encoding="utf-8")
        except OSError as error:
            sys.stderr.write(f"keel-audit: cannot write {args.output}: {error}\n")
            return USAGE_ERROR
    else:
        sys.stdout.write(report)
    if args.write_baseline:
        baselines.write(args.write_baseline, result.project, result.findings)
        sys.stderr.write(
            f"keel-audit: wrote {len(result.findings)} findings to {args.write_baseline}\n"
        )
        return 0
    failing = fail_on is not None and any(f.severity >= fail_on for f in result.findings)
    low = fail_under is not None and result.score is not None and result.score.score < fail_under
    return 1 if failing or low else 0
