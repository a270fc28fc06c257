"""Database/SQL rules: SQL text built by string formatting."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import ClassVar

from keel_audit.model import Finding, Location, Severity, Step
from keel_audit.rules._web import is_sample, mentions, nodes_of, walk_body
from keel_audit.rules.base import Rule
from keel_audit.source import FunctionNode, Module, Project

_TEXT = frozenset(
    {
        "sqlalchemy.text", "sqlalchemy.sql.text", "sqlalchemy.sql.expression.text",
        "sqlmodel.text",
    }
)  # fmt: skip
_EXECUTORS = frozenset(
    {"execute", "exec_driver_sql", "executemany", "executescript", "fetch", "fetchrow",
     "fetchval", "exec"}
)  # fmt: skip
# Statements whose values can be bind parameters. DDL and session commands (`CREATE ROLE x`,
# `SET TIME ZONE 'x'`, `GRANT`) take identifiers and cannot, so formatting is often the only
# way there; those are left to review, not reported.
_SQL_START = re.compile(
    r"^\s*\(?\s*(SELECT|INSERT|UPDATE|DELETE|WITH|MERGE|REPLACE|UPSERT)\b", re.IGNORECASE
)
_SQL_ANYWHERE = re.compile(
    r"\b(select\s|insert\s+into|delete\s+from|update\s+\S+\s+set|merge\s+into|with\s+\w+\s+as)",
    re.IGNORECASE,
)
_TRUSTED_ATTRS = frozenset({"__tablename__", "__table__", "name", "fullname", "key"})


def _leading_text(expr: ast.expr) -> str:
    """The literal text a formatted string starts with."""
    if isinstance(expr, ast.JoinedStr):
        parts: list[str] = []
        for value in expr.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                parts.append(value.value)
            else:
                break
        return "".join(parts)
    if isinstance(expr, ast.BinOp):
        return _leading_text(expr.left)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
        return _leading_text(expr.func.value)
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    return ""


def _trusted(expr: ast.expr, assigned: dict[str, ast.expr] | None = None, depth: int = 0) -> bool:
    """Interpolations that cannot carry user input: literals, UPPER_CASE constants,
    table names, lengths and numbers, placeholders joined from literals."""
    if isinstance(expr, ast.Constant):
        return True
    if isinstance(expr, ast.Name):
        if expr.id.isupper():
            return True
        # A local built from trusted pieces (`marks = ", ".join(...)`).
        value = (assigned or {}).get(expr.id)
        return value is not None and depth < 3 and _trusted(value, assigned, depth + 1)
    if isinstance(expr, ast.Attribute):
        if expr.attr in {"__tablename__"}:
            return True
        return expr.attr.isupper() or (
            expr.attr in _TRUSTED_ATTRS
            and isinstance(expr.value, ast.Attribute)
            and expr.value.attr == "__table__"
        )
    if isinstance(expr, ast.Call):
        if isinstance(expr.func, ast.Name) and expr.func.id in {"len", "int", "float", "range"}:
            return True
        if isinstance(expr.func, ast.Attribute) and expr.func.attr == "join" and expr.args:
            return _joined_placeholders(expr.args[0])
    if isinstance(expr, ast.FormattedValue):
        return _trusted(expr.value, assigned, depth)
    if isinstance(expr, ast.JoinedStr):
        return all(_trusted(value, assigned, depth) for value in expr.values)
    return False


def _joined_placeholders(arg: ast.expr) -> bool:
    """`", ".join(["%s"] * len(ids))`, `", ".join(f":p{i}" for i in range(n))`."""
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mult):
        return isinstance(arg.left, ast.List) and all(
            isinstance(e, ast.Constant) for e in arg.left.elts
        )
    if isinstance(arg, ast.ListComp | ast.GeneratorExp):
        targets = {
            node.id
            for gen in arg.generators
            for node in ast.walk(gen.target)
            if isinstance(node, ast.Name)
        }
        callees = {
            id(n.func) for n in ast.walk(arg.elt) if isinstance(n, ast.Call)
        }  # `str(i)`: the function is not a value
        names = {
            n.id for n in ast.walk(arg.elt) if isinstance(n, ast.Name) and id(n) not in callees
        }
        return names <= targets
    return False


def _untrusted_parts(expr: ast.expr) -> list[ast.expr] | None:
    """The interpolated expressions of a formatted string, or None if it is not one."""
    if isinstance(expr, ast.JoinedStr):
        values = [v.value for v in expr.values if isinstance(v, ast.FormattedValue)]
        return values if values else None
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mod):
        if isinstance(expr.left, ast.Constant) and isinstance(expr.left.value, str):
            right = expr.right
            return list(right.elts) if isinstance(right, ast.Tuple) else [right]
        return None
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        operands: list[ast.expr] = []
        stack: list[ast.expr] = [expr]
        while stack:
            item = stack.pop()
            if isinstance(item, ast.BinOp) and isinstance(item.op, ast.Add):
                stack.extend([item.right, item.left])
            else:
                operands.append(item)
        if not any(
            isinstance(o, ast.JoinedStr)
            or (isinstance(o, ast.Constant) and isinstance(o.value, str))
            for o in operands
        ):
            return None
        parts: list[ast.expr] = []
        for operand in operands:
            if isinstance(operand, ast.Constant):
                continue
            inner = _untrusted_parts(operand) if isinstance(operand, ast.JoinedStr) else None
            parts.extend(inner if inner is not None else [operand])
        return parts
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "format"
        and isinstance(expr.func.value, ast.Constant)
        and isinstance(expr.func.value.value, str)
    ):
        return [*expr.args, *(k.value for k in expr.keywords)]
    return None


def _is_migration(module: Module) -> bool:
    parts = module.path.split("/")
    return (
        "migrations" in parts
        or "alembic" in parts
        or any(v.startswith("alembic") for v in module.imports.values())
    )


class SqlStringFormatting(Rule):
    code: ClassVar[str] = "KA501"
    name: ClassVar[str] = "sql-string-formatting"
    severity: ClassVar[Severity] = Severity.ERROR
    summary: ClassVar[str] = "SQL built by string formatting is executed"
    why: ClassVar[str] = (
        "An f-string, `%`, `+` or `.format()` puts a value into the SQL text itself, so a "
        "quote in that value ends the literal and the rest runs as SQL: the classic "
        "injection, reachable wherever the value comes from a request. It also defeats the "
        "driver's statement cache (every value is a new statement)."
    )
    fix: ClassVar[str] = (
        'Pass values as bind parameters: `text("SELECT ... WHERE id = :id")` with '
        '`{"id": value}`, or build the statement with SQLAlchemy Core (`select(...).'
        "where(...)`). Identifiers (a sort column) come from a fixed mapping, never from "
        "the request."
    )

    def check_module(self, project: Project, module: Module) -> Iterator[Finding]:
        if module.is_test or _is_migration(module) or is_sample(module):
            return  # operator scripts and migrations do not serve requests
        if not mentions(module, "execute", "text(", "fetch", "exec"):
            return
        if not _SQL_ANYWHERE.search(module.text):
            return  # no statement text anywhere in the file
        for node in nodes_of(module, ast.FunctionDef, ast.AsyncFunctionDef):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from self._check_function(module, node)

    def _check_function(self, module: Module, func: FunctionNode) -> Iterator[Finding]:
        assigned: dict[str, ast.expr] = {}
        for node in walk_body(func):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    assigned[target.id] = node.value
            elif (
                isinstance(node, ast.AugAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(node.op, ast.Add)
                and node.target.id in assigned
            ):
                assigned[node.target.id] = ast.BinOp(
                    left=assigned[node.target.id], op=ast.Add(), right=node.value
                )
            if not isinstance(node, ast.Call) or not node.args:
                continue
            if not self._is_sink(module, node):
                continue
            argument = node.args[0]
            chain: tuple[Step, ...] = ()
            if isinstance(argument, ast.Name) and argument.id in assigned:
                built = assigned[argument.id]
                chain = (
                    Step(
                        Location(module.path, getattr(built, "lineno", node.lineno)),
                        f"{argument.id} built here",
                    ),
                    Step(Location(module.path, node.lineno, node.col_offset), "executed"),
                )
                argument = built
            parts = _untrusted_parts(argument)
            if not parts or not _SQL_START.match(_leading_text(argument)):
                continue
            untrusted = [p for p in parts if not _trusted(p, assigned)]
            if not untrusted:
                continue
            shown = ", ".join(ast.unparse(p)[:30] for p in untrusted[:3])
            yield self.finding(
                module,
                node,
                f"{ast.unparse(node.func)}() runs SQL formatted with {shown}",
                chain,
            )

    @staticmethod
    def _is_sink(module: Module, call: ast.Call) -> bool:
        if module.qualified_name(call.func) in _TEXT:
            return True
        return isinstance(call.func, ast.Attribute) and call.func.attr in _EXECUTORS


_ASYNC_SESSIONS = frozenset(
    {
        "sqlalchemy.ext.asyncio.async_sessionmaker", "sqlalchemy.ext.asyncio.AsyncSession",
        "sqlalchemy.ext.asyncio.session.AsyncSession", "sqlmodel.ext.asyncio.session.AsyncSession",
    }
)  # fmt: skip
_SYNC_MAKERS = frozenset({"sqlalchemy.orm.sessionmaker", "sqlalchemy.orm.session.sessionmaker"})


class AsyncSessionExpireOnCommit(Rule):
    code: ClassVar[str] = "KA502"
    name: ClassVar[str] = "async-session-expire-on-commit"
    severity: ClassVar[Severity] = Severity.WARNING
    summary: ClassVar[str] = "An async session factory keeps expire_on_commit=True (the default)"
    why: ClassVar[str] = (
        "After `await session.commit()` every loaded object is expired, so the next read of "
        "an attribute (`return user` serialised by FastAPI, `order.id` in a log line) "
        "triggers a lazy load. An AsyncSession cannot do implicit I/O: it raises "
        "`MissingGreenlet` and the request ends in a 500, typically on the one path where "
        "the handler commits before building the response. SQLAlchemy's asyncio guide sets "
        "`expire_on_commit=False` for this reason, and so does every real project checked."
    )
    fix: ClassVar[str] = (
        "Create the factory with `async_sessionmaker(engine, expire_on_commit=False)` (or "
        "`AsyncSession(..., expire_on_commit=False)`), and `await session.refresh(obj)` "
        "where a commit should reload server-side values."
    )

    def check_module(self, project: Project, module: Module) -> Iterator[Finding]:
        if module.is_test or is_sample(module) or not mentions(module, "AsyncSession", "async_"):
            return
        for node in nodes_of(module, ast.Call):
            if not isinstance(node, ast.Call):
                continue
            name = module.qualified_name(node.func) or ""
            is_async = name in _ASYNC_SESSIONS or (
                name in _SYNC_MAKERS
                and any(
                    k.arg == "class_" and (module.qualified_name(k.value) or "") in _ASYNC_SESSIONS
                    for k in node.keywords
                )
            )
            if not is_async or any(k.arg is None for k in node.keywords):
                continue  # `**options` may carry expire_on_commit
            flag = next((k.value for k in node.keywords if k.arg == "expire_on_commit"), None)
            if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is True):
                continue
            yield self.finding(
                module,
                node,
                f"{name.rsplit('.', 1)[-1]}(...) without expire_on_commit=False: attributes "
                "read after commit lazy-load and raise MissingGreenlet",
            )


RULES: tuple[type[Rule], ...] = (SqlStringFormatting, AsyncSessionExpireOnCommit)
