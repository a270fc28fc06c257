"""`keel new project DIR`: a new service from the Keel checkout this command runs from.

The source is that checkout's tracked files (`git ls-files`, working-tree content), not a
separate template: Keel itself is the template, so what Keel's CI proves is what a new project
starts from (docs/decisions.md says why not Copier). The steps: choose the features, drop the
others (project_layout), rename (rename), lay the few generated files over it (templates/project),
tidy the imports the rename reordered (ruff), lock (`uv lock`) and commit (`git`).
"""

from __future__ import annotations

import builtins
import importlib.metadata
import json
import keyword
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

import keel
from keel.scaffold import project_layout as layout
from keel.scaffold.rename import Names, rename_file, rename_path

TEMPLATES = Path(__file__).parent / "templates" / "project"
RECORD = ".keel-project.toml"
AUTHOR = ("keel new", "noreply@example.invalid")
RESERVED = frozenset({"keel", "keel_audit", "tests", "bench", "src", "packages", "docs", "app"})
"""Names the new project's own tree or its tools already use as top-level modules."""


class ScaffoldError(Exception):
    """A refusal with a message for the person who typed the command (exit status 2)."""


@dataclass(frozen=True)
class Choice:
    """The features a new project keeps, and why the others left."""

    options: tuple[str, ...]
    packages: frozenset[str]
    left_out: tuple[str, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """Everything `keel new project` would write, before it writes anything."""

    names: Names
    choice: Choice
    files: dict[str, bytes]
    executable: frozenset[str] = field(default_factory=frozenset)


def validate_name(name: str) -> str:
    """The package name, or a refusal saying what is wrong with it."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name.endswith("_"):
        raise ScaffoldError(
            f"--name {name!r}: use a lowercase Python identifier such as 'acme' or 'acme_shop' "
            "(letters, digits and underscores, starting with a letter)"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or hasattr(builtins, name):
        raise ScaffoldError(f"--name {name!r} is a Python keyword or builtin")
    if name in sys.stdlib_module_names:
        raise ScaffoldError(f"--name {name!r} is a standard-library module; imports would clash")
    if name in RESERVED or name in importlib.metadata.packages_distributions():
        raise ScaffoldError(
            f"--name {name!r} is already a module of Keel's tree or of a dependency; choose another"
        )
    return name


def validate_env_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*_", prefix):
        raise ScaffoldError(
            f"--env-prefix {prefix!r}: use uppercase letters, digits and underscores, ending "
            "with '_' (like 'ACME_')"
        )
    return prefix


def parse_features(values: Iterable[str]) -> list[str]:
    """`--with a,b --with c` → ['a', 'b', 'c']; 'none' stands for no optional feature."""
    names = [item.strip() for value in values for item in value.split(",") if item.strip()]
    unknown = sorted(set(names) - set(layout.FEATURE_OPTIONS) - {"none"})
    if unknown:
        raise ScaffoldError(
            f"unknown feature {', '.join(unknown)}; the optional features are "
            f"{', '.join(layout.FEATURE_OPTIONS)}"
        )
    return [name for name in names if name != "none"]


def choose(root: Path, with_: list[str] | None, without: list[str] | None) -> Choice:
    """The features to keep, closed under `requires`: a feature whose requirement leaves
    leaves too, and an option (orders + payments) leaves as a unit."""
    both = set(with_ or ()) & set(without or ())
    if both:
        raise ScaffoldError(f"--with and --without both name {', '.join(sorted(both))}")
    options = [
        name
        for name in layout.FEATURE_OPTIONS
        if (with_ is None or name in with_) and name not in (without or ())
    ]
    kept = {package for name in options for package in layout.FEATURE_OPTIONS[name]}
    notes: list[str] = []
    changed = True
    while changed:
        changed = False
        for package in sorted(kept):
            missing = [
                need for need in layout.feature_requirements(root, package) if need not in kept
            ]
            if missing:
                kept.discard(package)
                notes.append(f"{package} is left out too: it requires {', '.join(missing)}")
                changed = True
        for name in list(options):
            primary, *companions = layout.FEATURE_OPTIONS[name]
            if primary not in kept:
                options.remove(name)
                kept.difference_update(companions)
    left_out = tuple(sorted(layout.OPTIONAL - kept))
    return Choice(tuple(options), frozenset(kept), left_out, tuple(notes))


def find_source() -> Path:
    """The Keel checkout the running `keel` package lives in, or a refusal saying how to get one."""
    root = Path(keel.__file__).resolve().parents[2]
    inside = _run(["git", "-C", str(root), "rev-parse", "--show-toplevel"], check=False)
    if inside.returncode or Path(inside.stdout.strip()).resolve() != root:
        raise ScaffoldError(
            f"keel new project copies the Keel checkout it runs from, and this keel ({root}) "
            "is not in one (installed from a wheel?). Clone Keel with git, run `uv sync` there "
            "and use its .venv/bin/keel: docs/new-project.md"
        )
    return root


def _run(
    argv: list[str], *, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The one place the generator runs a tool (git, ruff, uv): fixed programs, own arguments."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=check)  # noqa: S603


def _git(root: Path, *args: str) -> str:
    return _run(["git", "-C", str(root), *args]).stdout


def read_tree(root: Path) -> tuple[dict[str, bytes], frozenset[str]]:
    """The checkout's tracked files (as they are in the working tree) and the executable ones."""
    files: dict[str, bytes] = {}
    executable: set[str] = set()
    for path in _git(root, "ls-files", "-z").split("\0"):
        source = root / path
        if not path or not source.is_file():
            continue  # deleted in the working tree, or a submodule
        files[path] = source.read_bytes()
        if os.access(source, os.X_OK):
            executable.add(path)
    return files, frozenset(executable)


def _render(template: str, **context: object) -> str:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=select_autoescape(default_for_string=False, default=False),
    )
    # A JSON string is a TOML basic string: quotes and backslashes in a path stay data.
    environment.filters["toml"] = lambda value: json.dumps(str(value), ensure_ascii=False)
    return environment.get_template(template).render(**context)


def plan_project(
    root: Path, names: Names, choice: Choice, *, command: str, now: datetime | None = None
) -> Plan:
    """The new project's files: the source without the left-out features, renamed, with the
    generated-from record and the README's head laid over it."""
    files, executable = read_tree(root)
    dropped = set(layout.OPTIONAL - choice.packages)
    kept = layout.remove_features(files, dropped)
    out: dict[str, bytes] = {}
    for path, content in kept.items():
        if path.startswith(layout.NOT_RENAMED):
            out[path] = content
            continue
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            out[rename_path(path, names)] = content
            continue
        out[rename_path(path, names)] = rename_file(path, text, names).encode("utf-8")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    context = {
        "names": names,
        "options": choice.options,
        "left_out": choice.left_out,
        "keel_version": keel.__version__,
        "commit": _git(root, "rev-parse", "HEAD").strip(),
        "dirty": bool(status.strip()),
        "generated_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "command": command,
    }
    out[RECORD] = _render("keel-project.toml.j2", **context).encode("utf-8")
    if "README.md" in out:
        readme = out["README.md"].decode("utf-8")
        _title, _, rest = readme.partition("\n\n")
        _intro, _, rest = rest.partition("\n\n")
        out["README.md"] = (_render("README-head.md.j2", **context) + rest).encode("utf-8")
    allow_grown_lines(kept, names, out)
    moved = frozenset(rename_path(path, names) for path in executable if path in kept)
    return Plan(names, choice, out, moved)


def allow_grown_lines(before: dict[str, bytes], names: Names, after: dict[str, bytes]) -> None:
    """Let line-too-long (E501) pass in the files whose lines the rename made too long, by
    ruff's per-file ignores in the new pyproject. (The rename adds no lines, so line i of a
    file is line i after it.)"""
    pyproject = after["pyproject.toml"].decode("utf-8")
    limit = int(tomllib.loads(pyproject).get("tool", {}).get("ruff", {}).get("line-length", 88))
    grown = sorted(
        new_path
        for path, content in before.items()
        if path.endswith(".py")
        and not path.startswith(layout.NOT_RENAMED)
        and (new_path := rename_path(path, names)) in after
        and any(
            len(old) <= limit < len(new)
            for old, new in zip(
                content.decode("utf-8").splitlines(),
                after[new_path].decode("utf-8").splitlines(),
                strict=False,
            )
        )
    )
    table = "[tool.ruff.lint.per-file-ignores]\n"
    for path in list(grown):  # a file that has ignores already gets E501 added to them
        entry = re.compile(rf"^{re.escape(json.dumps(path))} = \[", re.MULTILINE)
        if entry.search(pyproject):
            pyproject = entry.sub(lambda match: match[0] + '"E501", ', pyproject, count=1)
            grown.remove(path)
    if grown:
        block = _render("pyproject-line-length.toml.j2", line_length=limit, paths=grown)
        if table not in pyproject:
            pyproject += "\n" + table
        pyproject = pyproject.replace(table, table + block, 1)
    after["pyproject.toml"] = pyproject.encode("utf-8")


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise ScaffoldError(f"{name} is needed to finish the project and is not installed")
    return found


def write_project(
    plan: Plan, directory: Path, *, lock: bool = True, say: Callable[[str], None]
) -> None:
    """Write the plan, tidy it, lock it and commit it as the project's first commit."""
    for path, content in plan.files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        if path in plan.executable:
            target.chmod(0o755)
    say("tidying the imports the rename reordered (ruff)")
    ruff = _tool("ruff")
    for args in (["check", "--select", "I", "--fix", "--quiet"], ["format", "--quiet"]):
        _run([ruff, *args, "."], cwd=directory)
    if lock:
        say("locking the dependencies for the new name (uv lock)")
        uv = _tool("uv")
        if _run([uv, "lock", "--offline"], cwd=directory, check=False).returncode:
            _run([uv, "lock"], cwd=directory)  # the cache lacks a package: ask the registry
    say("committing (git)")
    _run(["git", "init", "--quiet", "-b", "main", str(directory)])
    identity: list[str] = []
    if _run(["git", "-C", str(directory), "config", "user.email"], check=False).returncode:
        identity = ["-c", f"user.name={AUTHOR[0]}", "-c", f"user.email={AUTHOR[1]}"]
    _git(directory, "add", "--all")
    _git(directory, *identity, "commit", "--quiet", "-m", f"Generated by: {command_of(plan)}")


def command_of(plan: Plan) -> str:
    record = tomllib.loads(plan.files[RECORD].decode("utf-8"))
    return str(record["generated"]["command"])


def check_directory(directory: Path) -> None:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ScaffoldError(f"{directory} exists and is not empty; choose a new or empty directory")


def command_line(directory: Path, names: Names, choice: Choice) -> str:
    """The command that generates the same project again (recorded in the project)."""
    parts = ["keel", "new", "project", str(directory), "--name", names.package]
    parts += ["--env-prefix", names.env_prefix, "--with", ",".join(choice.options) or "none"]
    return shlex.join(parts)


def new_project(
    directory: Path,
    *,
    name: str,
    env_prefix: str | None,
    with_: list[str] | None,
    without: list[str] | None,
    dry_run: bool = False,
    lock: bool = True,
    source: Path | None = None,
    say: Callable[[str], None] = print,
) -> Plan:
    """Validate everything first (nothing is written on a refusal), then generate."""
    names = Names(validate_name(name), validate_env_prefix(env_prefix or f"{name.upper()}_"))
    wanted = parse_features(with_) if with_ is not None else None
    unwanted = parse_features(without) if without is not None else None
    check_directory(directory)
    root = source or find_source()
    choice = choose(root, wanted, unwanted)
    for note in choice.notes:
        say(note)
    plan = plan_project(root, names, choice, command=command_line(directory, names, choice))
    say(f"features: {', '.join(choice.options) or 'none of the optional ones'}")
    if dry_run:
        for path in sorted(plan.files):
            say(f"would write {directory / path}")
        return plan
    directory.mkdir(parents=True, exist_ok=True)
    write_project(plan, directory, lock=lock, say=say)
    say(f"{directory}: {len(plan.files)} files, one commit; try: cd {directory}; ./dev.py serve")
    return plan
