"""What the blocking analysis (KA201, KA202) keeps of each function, so its tree can go.

`function_facts(module)` reads one module's tree once and returns compact facts: per function
its name, place, async-ness and, per call in its own body, what the call names (still
unresolved: the names of other modules are resolved later, against the whole project),
whether it is awaited, what its receiver is, and what the thread wrappers would run. The
analysis (`blocking.Analysis`) answers from these facts alone, never from nodes.

They are kept packed: one `marshal` string per module, compressed (zlib, level 1), and
unpacked when the analysis reads that module. A kept call then costs ~24 bytes, where its
objects cost ~290 (and a tree ~320 bytes a node): these facts are the one thing the audit
keeps of every function, so their size is most of what makes memory grow with the tree
(docs/audit.md "Memory").
"""

from __future__ import annotations

import ast
import marshal
import sys
import zlib
from collections.abc import Container
from dataclasses import dataclass
from typing import Any, NamedTuple

from keel_audit.callgraph import awaited_ids
from keel_audit.facts import extractor
from keel_audit.rules._blocking_names import (
    BLOCKING_CALLS,
    PATH_METHODS,
    PATH_TYPES,
    SYNC_TYPES,
    THREAD_WRAPPERS,
    SyncKind,
)
from keel_audit.source import FunctionNode, Module, iter_functions

# A call's resolvable name: (`self.method` / `cls.method` candidate, dotted name through
# the module's imports), either None. `NOTHING` when neither is known.
Target = tuple[str | None, str | None]
NOTHING: Target = (None, None)
# Is an expression a `pathlib.Path`? True, or the dotted names of constructors that make it
# one if any of them resolves (after re-exports) to a Path type; () is False.
PathTest = bool | tuple[str, ...]
# The packed forms (`ModuleFacts.packed`): a `CallFact`'s fields in order, and a
# `FunctionFact`'s without its module, its sync kinds by index (`_KINDS`).
CallRow = tuple[Any, ...]
FunctionRow = tuple[Any, ...]


class CallFact(NamedTuple):
    """One kept call (tuples: `unpack` makes one from a packed row without a copy)."""

    line: int
    col: int  # as `ast` counts (UTF-8 bytes)
    name: Target  # what the call's function expression names
    awaited: bool  # awaited, or entered by `async with` / iterated by `async for`
    lazy: bool  # under `if _global is None:` on a `global` of the function
    attr: str | None  # the method, when the function is an attribute
    path: PathTest  # for Path methods (`read_text`, …): is the receiver a Path
    base: str | None  # the receiver chain's root name (`client` of `client.db.find()`)
    hops: int  # attributes between that root and the method
    receiver: str  # the receiver as written, when it is a dotted chain of names
    base_global: str | None  # the root's dotted name, when it is not a local of the function
    args: tuple[Target | None, Target | None]  # what arguments 0 and 1 name (None: no such arg)


class FunctionFact(NamedTuple):
    qualname: str
    module: Module  # its path, name, lines and imports (the tree is not used)
    name: str
    line: int
    col: int
    is_async: bool
    cached: bool  # `@lru_cache` / `@cache`: runs once, not per request
    kinds: tuple[tuple[str, SyncKind | str], ...]  # local name → sync kind, or constructor
    calls: tuple[CallFact, ...]

    @property
    def short_name(self) -> str:
        return self.qualname.removeprefix(self.module.name + ".")


# The sync kinds a fact can name, by their index in the packed form.
_KINDS: tuple[SyncKind, ...] = tuple(dict.fromkeys(SYNC_TYPES.values()))
_KIND_INDEX = {kind: index for index, kind in enumerate(_KINDS)}


@dataclass(frozen=True, slots=True)
class ModuleFacts:
    packed: bytes  # its functions' rows (`_Reader.row`): one `marshal` string, compressed
    constructed: dict[str, str]  # module-level name → dotted name of the call that made it
    # Does a call hand a function to a thread wrapper (`CallFact.args`)? KA202 reads no
    # other module's facts.
    hands_to_threads: bool

    def functions(self, module: Module) -> list[FunctionFact | str]:
        """In `iter_functions` order; a function none of whose calls can matter is only its
        qualified name (the analysis needs to know it exists, nothing else)."""
        return unpack(module, self.packed)


@extractor()
def function_facts(module: Module) -> ModuleFacts:
    """The blocking analysis' facts of the module (a module fact: see `facts`)."""
    assignments = module_assignments(module)
    constructed = {
        name: made
        for name, value in assignments.items()
        if isinstance(value, ast.Call) and (made := module.qualified_name(value.func))
    }
    rows = tuple(
        _Reader(module, assignments, sys.intern(qualname), node).row()
        for qualname, node in iter_functions(module.tree, module.name)
    )
    threads = any(
        call[-1] != _NO_ARGS for row in rows if not isinstance(row, str) for call in row[-1]
    )  # (the args of each call of each function: see `_row` and `_Reader.row`)
    return ModuleFacts(zlib.compress(marshal.dumps(rows), 1), constructed, threads)


def unpack(module: Module, packed: bytes) -> list[FunctionFact | str]:
    """The facts that `_Reader.row` packed (a sync kind is packed as its index)."""
    functions: list[FunctionFact | str] = []
    for row in marshal.loads(zlib.decompress(packed)):  # noqa: S302 (written by `function_facts`, this run)
        if isinstance(row, str):
            functions.append(row)
            continue
        qualname, name, line, col, is_async, cached, kinds, calls = row
        functions.append(
            FunctionFact(
                qualname, module, name, line, col, is_async, cached,
                tuple((local, _KINDS[made] if isinstance(made, int) else made)
                      for local, made in kinds),
                tuple(map(CallFact._make, calls)),
            )
        )  # fmt: skip
    return functions


def module_assignments(module: Module) -> dict[str, ast.expr]:
    found: dict[str, ast.expr] = {}
    for node in module.tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                found[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            found[node.target.id] = node.value
    return found


def unwrap_annotation(
    module: Module, assignments: dict[str, ast.expr], expr: ast.expr | None, depth: int = 0
) -> str | None:
    """`Session`, `Annotated[Session, Depends(...)]`, `"Session"`, `SessionDep` (a module
    alias of an Annotated) or `Session | None` → "sqlalchemy.orm.Session"."""
    if expr is None or depth > 3:
        return None
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        try:
            parsed = ast.parse(expr.value, mode="eval").body
        except SyntaxError:
            return None
        return unwrap_annotation(module, assignments, parsed, depth + 1)
    if isinstance(expr, ast.Subscript):
        name = module.qualified_name(expr.value) or ""
        if name.endswith(("Annotated", "Optional")):
            inner = expr.slice.elts[0] if isinstance(expr.slice, ast.Tuple) else expr.slice
            return unwrap_annotation(module, assignments, inner, depth + 1)
        return None
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
        return unwrap_annotation(module, assignments, expr.left, depth + 1) or (
            unwrap_annotation(module, assignments, expr.right, depth + 1)
        )
    resolved = module.qualified_name(expr)
    if resolved and resolved.startswith(module.name + ".") and isinstance(expr, ast.Name):
        alias = assignments.get(expr.id)
        if alias is not None:
            return unwrap_annotation(module, assignments, alias, depth + 1)
    return resolved


class _Reader:
    """One function's own body, read once into facts."""

    def __init__(
        self, module: Module, assignments: dict[str, ast.expr], qualname: str, node: FunctionNode
    ) -> None:
        self.module, self.assignments, self.qualname, self.node = (
            module, assignments, qualname, node,
        )  # fmt: skip
        self.body = module.function_body(node)
        arguments = node.args
        self.arguments = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        self.globals = {name for n in self.body if isinstance(n, ast.Global) for name in n.names}
        self._locals: frozenset[str] | None = None
        self._testing: set[str] = set()  # names whose Path-ness is being worked out

    def name(self, func: ast.expr) -> Target:
        """What `CallGraph.resolve(module, func, qualname)` starts from."""
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in {"self", "cls"}
        ):
            return (sys.intern(f"{self.qualname.rsplit('.', 1)[0]}.{func.attr}"), None)
        dotted = self.module.qualified_name(func)
        return NOTHING if dotted is None else (None, sys.intern(dotted))

    def local_names(self) -> frozenset[str]:
        if self._locals is None:
            names = {a.arg for a in ast.walk(self.node.args) if isinstance(a, ast.arg)}
            for node in self.body:
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.add(node.id)
            self._locals = frozenset(names)
        return self._locals

    def kinds(self) -> tuple[tuple[str, SyncKind | str], ...]:
        """Local names that may hold a sync client, in the order they are bound: an
        annotation's kind, or the dotted name of the constructor called (resolved later)."""
        found: list[tuple[str, SyncKind | str]] = []
        for arg in self.arguments:
            annotation = unwrap_annotation(self.module, self.assignments, arg.annotation)
            kind = SYNC_TYPES.get(annotation or "")
            if kind is not None:
                found.append((arg.arg, kind))
        for node in self.body:
            if isinstance(node, ast.Assign):
                made = self._constructor(node.value)
                if made is not None:
                    found.extend((t.id, made) for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.With):
                for item in node.items:
                    made = self._constructor(item.context_expr)
                    if made is not None and isinstance(item.optional_vars, ast.Name):
                        found.append((item.optional_vars.id, made))
        return tuple(found)

    def _constructor(self, value: ast.expr | None) -> str | None:
        return self.module.qualified_name(value.func) if isinstance(value, ast.Call) else None

    def path_test(self, expr: ast.expr) -> PathTest:
        """`Analysis._is_path` as a formula over constructor names (see `PathTest`)."""
        if isinstance(expr, ast.Call):
            made = self.module.qualified_name(expr.func)
            return (made,) if made else ()
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
            return self.path_test(expr.left)
        if isinstance(expr, ast.Attribute) and expr.attr in {"parent", "with_suffix"}:
            return self.path_test(expr.value)
        if isinstance(expr, ast.Name) and expr.id not in self._testing:
            for arg in self.arguments:
                if arg.arg == expr.id:
                    made = unwrap_annotation(self.module, self.assignments, arg.annotation)
                    return made in PATH_TYPES
            names: list[str] = []
            self._testing.add(expr.id)  # `p = p / "x"`: the other bindings decide
            try:
                for node in self.body:
                    if isinstance(node, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == expr.id for t in node.targets
                    ):
                        test = self.path_test(node.value)
                        if test is True:
                            return True
                        if test:
                            names.extend(test)
            finally:
                self._testing.discard(expr.id)
            return tuple(names)
        return ()

    def lazy_init(self, node: ast.AST) -> bool:
        """Inside `if _thing is None:` / `if not _thing:` on a `global` of the function: a
        one-time initialisation (a logger, a client), not work done per call."""
        if not self.globals:
            return False
        current = self.module.parent(node)
        while current is not None and current is not self.node:
            if isinstance(current, ast.If):
                test = current.test
                if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
                    test = test.operand
                if isinstance(test, ast.Compare) and len(test.ops) == 1:
                    test = test.left
                if isinstance(test, ast.Name) and test.id in self.globals:
                    return True
            current = self.module.parent(current)
        return False

    def wrapped(self, call: ast.Call, index: int) -> Target | None:
        """What a thread wrapper would run: argument `index` (a lambda's called function)."""
        if len(call.args) <= index:
            return None
        wrapped = call.args[index]
        if isinstance(wrapped, ast.Lambda) and isinstance(wrapped.body, ast.Call):
            wrapped = wrapped.body.func
        return self.name(wrapped)

    def call(self, call: ast.Call, awaited: bool) -> CallFact:
        func = call.func
        attr = func.attr if isinstance(func, ast.Attribute) else None
        path: PathTest = ()
        base_id = base_global = None
        hops, receiver = 0, ""
        if isinstance(func, ast.Attribute):
            if func.attr in PATH_METHODS:
                path = self.path_test(func.value)
            base, parts = func.value, []
            while isinstance(base, ast.Attribute):
                parts.append(base.attr)
                base, hops = base.value, hops + 1
            if isinstance(base, ast.Name):
                base_id = base.id
                receiver = ".".join([base.id, *reversed(parts)])
                dotted = self.module.qualified_name(base)
                if dotted and base.id not in self.local_names():
                    base_global = dotted
        args = (self.wrapped(call, 0), self.wrapped(call, 1) if attr == "run_in_executor" else None)
        return CallFact(
            call.lineno, call.col_offset, self.name(func), awaited, self.lazy_init(call), attr,
            path, base_id, hops, receiver, base_global, args,
        )  # fmt: skip

    def row(self) -> FunctionRow | str:
        """The function's facts in their packed form (`unpack` reads it), or only its
        qualified name when none of its calls can matter."""
        awaited = awaited_ids(self.body)
        names = _Names(self.module)
        raw = [self.call(child, id(child) in awaited) for child in self.body
               if isinstance(child, ast.Call)]  # fmt: skip
        receivers = {call.base for call in raw}  # (a local no call is made on cannot matter)
        kinds = tuple(
            (local, _KIND_INDEX[made] if isinstance(made, SyncKind) else made)
            for local, made in self.kinds()
            if names.matter(made) and (self.module.peers is None or local in receivers)
        )
        bound = {local for local, _ in kinds}
        calls = tuple(kept for call in raw if (kept := names.prune(call, bound)))
        if not calls:
            return self.qualname
        node = self.node
        return (
            self.qualname, node.name, node.lineno, node.col_offset,
            isinstance(node, ast.AsyncFunctionDef), self._cached(), kinds, calls,
        )  # fmt: skip

    def _cached(self) -> bool:
        for decorator in self.node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if self.module.qualified_name(target) in _CACHES:
                return True
        return False


_NO_ARGS: tuple[Target | None, Target | None] = (None, None)


class _Names:
    """Which names can matter to the analysis (`blocking.Analysis`), so a call's fact
    keeps only those, and a call that can never matter is not kept at all (most calls:
    `len`, `str.join`, a library's helpers). A dotted name matters when it is a known
    blocking call, thread wrapper, sync or Path type, or may name something of the project
    (a prefix of it is one of the project's modules: re-exports are resolved later, and
    only through the project's modules). Nothing is pruned when the modules are unknown."""

    _KNOWN = frozenset({*BLOCKING_CALLS, *THREAD_WRAPPERS, *SYNC_TYPES, *PATH_TYPES})

    def __init__(self, module: Module) -> None:
        self.module = module
        self.shared: dict[Target, Target] = {}  # one tuple per distinct target

    def wrapper(self, name: Target) -> bool:
        """Can the call be a thread wrapper (`THREAD_WRAPPERS`, maybe re-exported)? A
        method (`self.x`) cannot; KA202 reads the arguments only of those."""
        dotted = name[1]
        return dotted is not None and (dotted in THREAD_WRAPPERS or self.matter(dotted))

    def matter(self, dotted: SyncKind | str | None) -> bool:
        if dotted is None or self.module.peers is None or not isinstance(dotted, str):
            return dotted is not None
        return dotted in self._KNOWN or self.module.may_be_the_projects(dotted)

    def target(self, name: Target | None) -> Target | None:
        if name is None:
            return None
        if name[0] is not None or self.matter(name[1]):
            return self.shared.setdefault(name, name)
        return NOTHING

    def prune(self, call: CallFact, bound: Container[str]) -> CallRow | None:
        """The call with what cannot matter left out (packed), or None when nothing of it
        can: what `Analysis.direct`, `Analysis.chain` and KA202's `_wrapped` would read."""
        if self.module.peers is None:
            return _row(call, call.name, call.args, call.path, call.base, call.hops,
                        call.receiver, call.base_global)  # fmt: skip
        name = self.target(call.name) or NOTHING
        args = _NO_ARGS
        wrapper = self.wrapper(name) or call.attr == "run_in_executor"
        if wrapper:
            first, second = self.target(call.args[0]), self.target(call.args[1])
            args = (None if first == NOTHING else first, None if second == NOTHING else second)
            if args == _NO_ARGS:
                args = _NO_ARGS
        if call.awaited:  # never blocking itself: only KA202 reads it (`await to_thread(f)`)
            if not wrapper or args == (None, None):
                return None
            return _row(call, name, args, (), None, call.hops, call.receiver, call.base_global)
        path = call.path
        if isinstance(path, tuple):
            path = tuple(made for made in path if self.matter(made))
        base_global = call.base_global if self.matter(call.base_global) else None
        base = call.base if call.base in bound or base_global is not None else None
        if name == NOTHING and not path and base is None and call.attr != "run_in_executor":
            return None
        if base is None:
            return _row(call, name, args, path, None, 0, "", None)
        return _row(call, name, args, path, base, call.hops, call.receiver, base_global)


def _row(
    call: CallFact,
    name: Target,
    args: tuple[Target | None, Target | None],
    path: PathTest,
    base: str | None,
    hops: int,
    receiver: str,
    base_global: str | None,
) -> CallRow:
    """A kept call, packed: `CallFact`'s fields in order, some of them replaced."""
    return (
        call.line, call.col, name, call.awaited, call.lazy, call.attr, path, base, hops,
        receiver, base_global, args,
    )  # fmt: skip


_CACHES = frozenset({"functools.lru_cache", "functools.cache", "functools.cached_property"})
