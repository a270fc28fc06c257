"""Reading the audited project: files, modules, imports and names, never executing any of it.

`Project.load(root, config)` walks the tree (symlinks followed once, loops reported), parses
every `.py` file with the stdlib `ast` (falling back to libcst for syntax newer than the
running interpreter, see `parsing.py`), and records each file it could not read in
`Project.unparsed` with the reason. Nothing here raises on odd input.
"""

from __future__ import annotations

import ast
import builtins
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from keel_audit.parsing import ParseFailure, decode, parse_source

if TYPE_CHECKING:
    from keel_audit.config import Config

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
NodeT = TypeVar("NodeT", bound=ast.AST)

_BUILTINS = frozenset(dir(builtins))
# Directories no project audits: tool caches, environments, VCS metadata, build output.
SKIPPED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".venv", "venv", ".env", "env", "node_modules", "__pycache__",
        ".tox", ".nox", ".mypy_cache", ".ruff_cache", ".pytest_cache", "site-packages",
        ".eggs", "build", "dist", "htmlcov", ".idea", ".vscode",
    }
)  # fmt: skip


def _is_test_path(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or any(part in {"tests", "test", "testing"} for part in parts[:-1])
    )


@dataclass
class Module:
    path: str  # posix, relative to the audited root
    name: str  # dotted module name
    tree: ast.Module
    lines: list[str]
    is_test: bool
    parser: str = "ast"  # "ast", or "libcst" when the stdlib could not read the syntax
    # What rules keep of the tree, by extractor (see `facts.module_fact`).
    facts: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    source: Path | None = None  # the file, to read the tree again once it was dropped
    line_count: int = field(default=0, compare=False)  # len(lines), kept once they go
    # The dotted names of every module the project may hold (from the file walk, before
    # parsing; shared by all its modules), so a fact can tell names of the project from
    # others (`_blocking_facts`). None: not known, every name may be the project's.
    peers: frozenset[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.line_count = len(self.lines)

    def drop_tree(self) -> None:
        """Let the tree and the source text go (its facts are taken, see
        `facts.take_facts`). Asking for `tree` again parses the file again: the same nodes,
        new objects, so nothing may hold a node of the dropped tree (facts hold none).
        Asking for `lines` or `text` reads the file again (`_SourceCache`): a report needs
        the lines of its findings only."""
        for name in (
            "tree",
            "_tables",
            "_parents",
            "_by_place",
            "_defs",
            "_def_places",
            "lines",
            "_text",
        ):
            self.__dict__.pop(name, None)

    def may_be_the_projects(self, dotted: str) -> bool:
        """Can `dotted` turn out to name something of the project? Only when a prefix of it
        is one of the project's modules (re-exports are followed through those alone), or
        when the modules are not known."""
        if self.peers is None:
            return True
        cut = dotted.find(".")
        while cut > 0:
            if dotted[:cut] in self.peers:
                return True
            cut = dotted.find(".", cut + 1)
        return False

    @property
    def text(self) -> str:
        """The source, its lines joined by newlines (for text searches)."""
        text: str | None = self.__dict__.get("_text")
        if text is None:
            if "lines" not in self.__dict__:
                return _SOURCES.read(self)[1]
            text = self.__dict__["_text"] = "\n".join(self.lines)
        return text

    def __getattr__(self, name: str) -> Any:
        """Only reached for a dropped `tree` or `lines` (normal attributes otherwise)."""
        if name not in ("tree", "lines") or self.source is None:
            raise AttributeError(name)
        if name == "lines":
            return _SOURCES.read(self)[0]
        parsed = parse_source(self.source.read_bytes(), self.path)
        tree = parsed.tree if not isinstance(parsed, ParseFailure) else ast.Module([], [])
        self.__dict__["tree"] = tree
        _TREES.keep(self)
        return tree

    @cached_property
    def function_names(self) -> tuple[str, ...]:
        """The qualified names of the module's functions, in `iter_functions` order (kept
        when the tree goes: `Project.functions`' keys)."""
        return tuple(sys.intern(name) for name, _ in iter_functions(self.tree, self.name))

    @cached_property
    def _defs(self) -> dict[str, FunctionNode]:
        defs: dict[str, FunctionNode] = {}
        for qualname, node in iter_functions(self.tree, self.name):
            defs.setdefault(qualname, node)
        return defs

    def function(self, qualname: str) -> FunctionNode | None:
        """The (first) def of that qualified name, in the tree as it is now."""
        return self._defs.get(qualname)

    @cached_property
    def _def_places(self) -> dict[tuple[int, int], FunctionNode]:
        defs: list[FunctionNode] = [*self.nodes(ast.FunctionDef), *self.nodes(ast.AsyncFunctionDef)]
        return {(node.lineno, node.col_offset): node for node in defs}

    def function_at(self, line: int, col: int) -> FunctionNode:
        """The def starting there (a place a fact kept), in the tree as it is now."""
        return self._def_places[(line, col)]

    @property
    def uses_fastapi(self) -> bool:
        """Imports FastAPI (`Project.app_modules`)."""
        return any(target.startswith("fastapi") for target in self.imports.values())

    def qualname_of(self, function: FunctionNode) -> str | None:
        """The qualified name of a def of this module (of this tree or an earlier reading
        of it: matched by place, which a re-read keeps)."""
        place = (function.lineno, function.col_offset, function.name)
        for qualname, node in self._defs.items():
            if (node.lineno, node.col_offset, node.name) == place:
                return qualname
        return None

    @property
    def is_package(self) -> bool:
        return self.path.endswith("__init__.py")

    def resolve_relative(self, module: str | None, level: int) -> str:
        """`from ..x import y` in `a.b.c` → `a.x` (the base the imported names hang on)."""
        if level == 0:
            return module or ""
        parts = self.name.split(".")
        keep = len(parts) - level + (1 if self.is_package else 0)
        base = parts[: max(keep, 0)]
        if module:
            base.append(module)
        return ".".join(base)

    @cached_property
    def imports(self) -> dict[str, str]:
        """Local name → fully qualified dotted name, from every import in the module (at any
        depth: imports inside functions and `if TYPE_CHECKING:` blocks count too)."""
        found: dict[str, str] = {}
        statements: list[ast.Import | ast.ImportFrom] = [
            *self.nodes(ast.Import),
            *self.nodes(ast.ImportFrom),
        ]
        statements.sort(key=lambda node: (node.lineno, node.col_offset))
        for node in statements:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        found[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        found.setdefault(top, top)
            elif isinstance(node, ast.ImportFrom):
                base = self.resolve_relative(node.module, node.level)
                for alias in node.names:
                    if alias.name == "*":
                        continue
                    target = f"{base}.{alias.name}" if base else alias.name
                    found[alias.asname or alias.name] = target
        return found

    @cached_property
    def top_level_names(self) -> frozenset[str]:
        """Names the module itself defines at top level (functions, classes, assignments)."""
        names: set[str] = set()
        for node in self.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        names.add(target.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
        return frozenset(names)

    def qualified_name(self, expr: ast.expr) -> str | None:
        """The dotted name an expression refers to, through this module's imports:
        `sa.create_engine` → "sqlalchemy.create_engine"; a module-level def `helper` →
        "<module>.helper"; an unshadowed builtin `open` → "builtins.open". Anything else
        (locals, attributes of call results, `self.x`) → None."""
        attrs: list[str] = []
        while isinstance(expr, ast.Attribute):
            attrs.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        name = expr.id
        if name in self.imports:
            base = self.imports[name]
        elif name in self.top_level_names:
            base = f"{self.name}.{name}"
        elif name in _BUILTINS:
            base = f"builtins.{name}"
        else:
            return None
        return ".".join([base, *reversed(attrs)])

    @cached_property
    def _tables(self) -> _Tables:
        """One pre-order walk: nodes by class (in source order) and each def's own body
        (`callgraph.body_nodes` order), so no rule walks the tree again."""
        return _index(self.tree)

    def function_body(self, function: FunctionNode) -> list[ast.AST]:
        """`callgraph.body_nodes(function)`, from the module's one walk when it is here."""
        body = self._tables[1].get(id(function))
        return body if body is not None else list(scoped_walk(list(reversed(function.body))))

    @cached_property
    def _parents(self) -> dict[int, ast.AST]:
        """Each node's parent, by id: built on the first `parent()` question, since few
        modules are ever asked one (a map of every node would cost as much as the tree)."""
        parents: dict[int, ast.AST] = {}
        stack: list[ast.AST] = [self.tree]
        while stack:
            node = stack.pop()
            children = child_nodes(node)
            for child in children:
                parents[id(child)] = node
            stack.extend(children)
        return parents

    def parent(self, node: ast.AST) -> ast.AST | None:
        """The node directly containing `node` (None for the module itself). A node of an
        earlier reading of the tree (`drop_tree`, `_TreeCache`) is found by its place."""
        found = self._parents.get(id(node))
        if found is None and hasattr(node, "end_col_offset"):
            same = self._by_place.get(_place(node))
            if same is not None and same is not node:
                found = self._parents.get(id(same))
        return found

    @cached_property
    def _by_place(self) -> dict[tuple[Any, ...], ast.AST]:
        places: dict[tuple[Any, ...], ast.AST] = {}
        for nodes in self._tables[0].values():
            for node in nodes:
                if hasattr(node, "end_col_offset"):
                    places.setdefault(_place(node), node)
        return places

    def enclosing_function(self, node: ast.AST) -> FunctionNode | None:
        current = self.parent(node)
        while current is not None and not isinstance(
            current, ast.FunctionDef | ast.AsyncFunctionDef
        ):
            current = self.parent(current)
        return current

    def at_import_time(self, node: ast.AST) -> bool:
        """True when `node` runs when the module is imported: not inside a function or
        lambda, and not under `if __name__ == "__main__":`."""
        current = self.parent(node)
        while current is not None:
            if isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                return False
            if isinstance(current, ast.If) and "__main__" in ast.unparse(current.test):
                return False
            current = self.parent(current)
        return True

    def nodes(self, kind: type[NodeT]) -> list[NodeT]:
        """Every node of exactly this class in the module (one shared walk, cached): use
        it instead of `ast.walk` in rules, e.g. `module.nodes(ast.Call)`."""
        return self._tables[0].get(kind, [])  # type: ignore[return-value]

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""


def _place(node: Any) -> tuple[Any, ...]:
    return (node.__class__, node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)


class _TreeCache:
    """The trees read again after they were dropped (a project-level rule asking for a
    module's nodes), kept for the last few modules only, so memory stays flat however many
    modules the rules visit: at most `SIZE` trees and, past the newest, `LINES` lines of
    source between them (a tree costs ~1.4 KiB a line). By count alone, a run whose rules
    read large modules again kept more: on the fastapi sdist 4x, 64 trees held ~34 MiB
    where at 1x they held ~18 MiB. A rule holding a node of an evicted tree still has it
    (and `Module.parent` finds its place in the new reading)."""

    SIZE = 64
    LINES = 30_000

    def __init__(self) -> None:
        self.modules: dict[int, Module] = {}
        self.lines = 0

    def keep(self, module: Module) -> None:
        if self.modules.pop(id(module), None) is not None:
            self.lines -= module.line_count
        self.modules[id(module)] = module
        self.lines += module.line_count
        while len(self.modules) > 1 and (len(self.modules) > self.SIZE or self.lines > self.LINES):
            oldest = self.modules.pop(next(iter(self.modules)))
            self.lines -= oldest.line_count
            oldest.drop_tree()


_TREES = _TreeCache()


class _SourceCache:
    """The lines (and their text joined by newlines) of the last few modules whose source
    was dropped and is asked for again: reports and late rules read findings in path
    order, so a handful of files covers them, and memory does not grow with the tree."""

    SIZE = 8

    def __init__(self) -> None:
        # By module identity (a later audit's module of the same file reads it afresh);
        # the module is kept in its entry so that its id is not reused meanwhile.
        self.entries: dict[int, tuple[Module, list[str], str]] = {}

    def read(self, module: Module) -> tuple[list[str], str]:
        entry = self.entries.pop(id(module), None)
        if entry is None or entry[0] is not module:
            entry = (module, *_read_lines(module.source))
        self.entries[id(module)] = entry  # (most recent last)
        while len(self.entries) > self.SIZE:
            del self.entries[next(iter(self.entries))]
        return entry[1], entry[2]


def _read_lines(path: Path | None) -> tuple[list[str], str]:
    """A file's lines as `parsing.parse_source` decoded them (empty if it is gone)."""
    try:
        text = decode(path.read_bytes()) if path is not None else ""
    except OSError:
        text = ""
    if isinstance(text, ParseFailure):
        text = ""
    lines = text.removeprefix("\ufeff").splitlines()
    return lines, "\n".join(lines)


_SOURCES = _SourceCache()
_Tables = tuple[dict[type[ast.AST], list[ast.AST]], dict[int, list[ast.AST]]]
# Fields that never hold a node (names, flags, comments) and `ctx` (Load/Store/Del, which
# CPython shares between nodes, so no rule asks for them): the walk does not look at them.
_LEAF_FIELDS = frozenset(
    {"ctx", "id", "attr", "arg", "name", "module", "level", "is_async", "conversion",
     "type_comment", "kind", "simple", "tag", "n", "s"}
)  # fmt: skip
_CHILD_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {ast.Constant: ()}
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _child_fields(kind: type[ast.AST]) -> tuple[str, ...]:
    fields = _CHILD_FIELDS.get(kind)
    if fields is None:
        fields = _CHILD_FIELDS[kind] = tuple(f for f in kind._fields if f not in _LEAF_FIELDS)
    return fields


def child_nodes(node: ast.AST) -> list[ast.AST]:
    """`ast.iter_child_nodes(node)` as a list, without the `ctx` singletons, faster."""
    children: list[ast.AST] = []
    for name in _child_fields(node.__class__):
        value = getattr(node, name, None)
        if value.__class__ is list:
            children.extend(item for item in value if isinstance(item, ast.AST))
        elif isinstance(value, ast.AST):
            children.append(value)
    return children


def scope_heads(node: ast.AST) -> list[ast.AST]:
    """The parts of a nested def, lambda or class that run where it is defined:
    decorators, argument defaults, class bases."""
    heads: list[ast.AST] = list(getattr(node, "decorator_list", []))
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        heads.extend(node.args.defaults)
        heads.extend(d for d in node.args.kw_defaults if d is not None)
    if isinstance(node, ast.ClassDef):
        heads.extend(node.bases)
    return heads


def scoped_walk(stack: list[ast.AST]) -> Iterator[ast.AST]:
    """Pre-order from `stack` (reversed), not entering nested scopes past their heads."""
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, SCOPES):
            stack.extend(reversed(scope_heads(node)))
        else:
            stack.extend(reversed(child_nodes(node)))


def _index(tree: ast.Module) -> _Tables:
    index: dict[type[ast.AST], list[ast.AST]] = {}
    bodies: dict[int, list[ast.AST]] = {}
    # Each entry: a node and the body list of the def whose own code it is (None: no def's,
    # or a nested scope's head, which `scoped_walk` adds to the enclosing body in its order).
    stack: list[tuple[ast.AST, list[ast.AST] | None]] = [(tree, None)]
    pop, push = stack.pop, stack.append
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    while stack:
        node, owner = pop()
        kind = node.__class__
        bucket = index.get(kind)
        if bucket is None:
            index[kind] = [node]
        else:
            bucket.append(node)
        if owner is not None:
            owner.append(node)
        children_owner = owner
        inner: list[ast.AST] | None = None
        if kind in SCOPES:
            if owner is not None:
                owner.extend(scoped_walk(list(reversed(scope_heads(node)))))
            children_owner = None
            if kind in functions:
                inner = bodies[id(node)] = []
        fields = _CHILD_FIELDS.get(kind) or _child_fields(kind)
        for name in reversed(fields):
            value = getattr(node, name, None)
            child_owner = inner if inner is not None and name == "body" else children_owner
            if value.__class__ is list:
                for item in reversed(value):
                    if isinstance(item, ast.AST):
                        push((item, child_owner))
            elif isinstance(value, ast.AST):
                push((value, child_owner))
    return index, bodies


@dataclass
class Project:
    root: Path
    modules: list[Module]
    pyproject: dict[str, Any]
    unparsed: list[tuple[str, str]]  # path, reason
    other_files: list[str]  # relative paths of non-Python files (Dockerfile, workflows, …)
    _by_name: dict[str, Module] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for module in self.modules:
            self._by_name.setdefault(module.name, module)

    @classmethod
    def load(
        cls,
        root: Path,
        config: Config | None = None,
        on_module: Callable[[Module], None] | None = None,
    ) -> Project:
        """`on_module` is called with each module as soon as it is parsed (in order)."""
        from keel_audit.config import Config, read_pyproject

        root = root.resolve()
        pyproject = read_pyproject(root)
        config = config or Config.from_pyproject(pyproject)
        modules: list[Module] = []
        unparsed: list[tuple[str, str]] = []
        others: list[str] = []
        source_roots = [root / extra for extra in config.src] + [root / "src", root]
        files = list(walk_files(root, config))
        names = {
            relpath: module_name(root, relpath, source_roots)
            for relpath, problem in files
            if problem is None and relpath.endswith(".py")
        }
        peers = frozenset(names.values())
        for relpath, problem in files:
            if problem is not None:
                unparsed.append((relpath, problem))
                continue
            if not relpath.endswith(".py"):
                others.append(relpath)
                continue
            loaded = _load_module(root, relpath, names[relpath], config.max_file_bytes, peers)
            if isinstance(loaded, Module):
                modules.append(loaded)
                if on_module is not None:
                    on_module(loaded)
            else:
                unparsed.append((relpath, loaded))
        return cls(root, modules, pyproject, unparsed, others)

    def read_text(self, relpath: str) -> str | None:
        """A project file's text (UTF-8, undecodable bytes replaced), or None if absent."""
        path = self.root / relpath
        try:
            if not path.resolve().is_relative_to(self.root):
                return None
            return path.read_bytes().decode("utf-8", errors="replace")
        except (OSError, ValueError):
            return None

    def module(self, name: str) -> Module | None:
        return self._by_name.get(name)

    @cached_property
    def app_modules(self) -> list[Module]:
        """Modules that import FastAPI or create a `FastAPI()` / `APIRouter()`."""
        return [module for module in self.modules if module.uses_fastapi]

    @cached_property
    def functions(self) -> FunctionIndex:
        """Qualified name → (module, def), for module-level functions ("pkg.mod.f"), methods
        ("pkg.mod.Class.f") and nested functions ("pkg.mod.outer.inner"). The names are
        kept, the def is read from its module's tree when asked for (`_Functions`)."""
        return FunctionIndex(self.modules)


class FunctionIndex(Mapping[str, tuple["Module", FunctionNode]]):
    """`Project.functions`: which module defines each name (`owners`) (first def wins), the nodes
    from the module's tree on demand, so the index holds no tree."""

    def __init__(self, modules: list[Module]) -> None:
        self.owners: dict[str, Module] = {}
        for module in modules:
            for qualname in module.function_names:
                self.owners.setdefault(qualname, module)

    def __getitem__(self, qualname: str) -> tuple[Module, FunctionNode]:
        module = self.owners[qualname]
        node = module.function(qualname)
        if node is None:  # (the file changed under the audit)
            raise KeyError(qualname)
        return module, node

    def __contains__(self, qualname: object) -> bool:
        return qualname in self.owners

    def __iter__(self) -> Iterator[str]:
        return iter(self.owners)

    def __len__(self) -> int:
        return len(self.owners)


def iter_functions(tree: ast.AST, prefix: str) -> Iterator[tuple[str, FunctionNode]]:
    body = getattr(tree, "body", [])
    stack: list[tuple[str, ast.stmt]] = [(prefix, node) for node in reversed(body)]
    while stack:
        scope, node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            qualname = f"{scope}.{node.name}"
            yield qualname, node
            stack.extend((qualname, child) for child in reversed(node.body))
        elif isinstance(node, ast.ClassDef):
            stack.extend((f"{scope}.{node.name}", child) for child in reversed(node.body))
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.AsyncWith):
            children = [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                children.extend(handler.body)
            stack.extend((scope, child) for child in reversed(children))


def walk_files(root: Path, config: Config) -> Iterator[tuple[str, str | None]]:
    """Every file under `root` as (posix relative path, problem or None), sorted, each real
    directory entered once: a symlink that leads back into a directory already being walked
    is reported as a loop, one leading outside the root is skipped."""
    seen: set[tuple[int, int]] = set()

    def visit(directory: Path, rel: str) -> Iterator[tuple[str, str | None]]:
        try:
            stat = directory.stat()
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError as error:
            yield rel or ".", f"could not read directory: {error.strerror or error}"
            return
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            yield rel, "symlink loop: this directory is already being audited"
            return
        seen.add(key)
        for entry in entries:
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            if config.is_excluded(child_rel):
                continue
            try:
                is_dir = entry.is_dir()
                is_link = entry.is_symlink()
            except OSError:
                continue
            if is_dir:
                if entry.name in SKIPPED_DIRS or entry.name.endswith(".egg-info"):
                    continue
                if is_link and not _inside(root, Path(entry.path)):
                    continue
                if (Path(entry.path) / "CACHEDIR.TAG").is_file():
                    continue  # a tool's cache (bford.info/cachedir), e.g. downloaded sdists
                yield from visit(Path(entry.path), child_rel)
            elif entry.name in SKIPPED_DIRS:  # a worktree's `.git` file
                continue
            elif is_link and not entry.is_file():
                yield child_rel, "broken symlink"
            elif is_link and not _inside(root, Path(entry.path)):
                continue
            else:
                yield child_rel, None

    yield from visit(root, "")


def _inside(root: Path, path: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):
        return False


def module_name(root: Path, relpath: str, source_roots: list[Path]) -> str:
    """The dotted name Python would import the file as: the package chain (directories with
    `__init__.py`) above it, else its path under the deepest source root (`src/`, configured
    roots, the project root)."""
    path = root / relpath
    parts = [path.stem] if path.name != "__init__.py" else []
    directory = path.parent
    if (directory / "__init__.py").is_file():
        while (directory / "__init__.py").is_file() and directory != root.parent:
            parts.insert(0, directory.name)
            directory = directory.parent
        return ".".join(parts) or path.stem
    for source_root in source_roots:
        if path.is_relative_to(source_root):
            rel = path.relative_to(source_root).with_suffix("")
            pieces = [p for p in rel.parts if p != "__init__"]
            if all(piece.isidentifier() for piece in pieces):
                return ".".join(pieces) or path.stem
    return path.stem


def _load_module(
    root: Path, relpath: str, name: str, max_bytes: int, peers: frozenset[str]
) -> Module | str:
    try:
        data = (root / relpath).read_bytes()
    except OSError as error:
        return f"could not read: {error.strerror or error}"
    if len(data) > max_bytes:
        return (
            f"skipped: {len(data):,} bytes is over max-file-bytes ({max_bytes:,}); "
            "likely generated (raise [tool.keel-audit] max-file-bytes to audit it)"
        )
    parsed = parse_source(data, relpath)
    if isinstance(parsed, ParseFailure):
        return parsed.reason
    return Module(
        path=relpath,
        name=name,
        tree=parsed.tree,
        lines=parsed.text.splitlines(),
        is_test=_is_test_path(relpath),
        parser=parsed.parser,
        source=root / relpath,
        peers=peers,
    )
