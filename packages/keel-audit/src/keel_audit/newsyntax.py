"""Rewrite syntax newer than the running interpreter into older syntax, via libcst.

Used only for files the stdlib `ast` rejects. libcst parses 3.0-3.15 into a concrete tree
that keeps every character; the transformer below rewrites the constructs 3.11 cannot read
into ones it can, without adding or removing a line, so every finding's line is the line
in the real file (columns may shift on a rewritten line):

* `except A, B:` / `except* A, B:` (3.14)    → `except (A, B):`
* `type X[T] = ...` (3.12)                   → `X = ...`
* `def f[T](...)`, `class C[T]:` (3.12/3.13) → type parameters dropped
* f-strings reusing their own quotes inside `{}` (3.12) → the outer string triple-quoted
* t-strings `t"..."` (3.14)                  → `__tstring__(expr, ...)`: a call, not an
  f-string, so SQL built with t-strings (the safe way) is not mistaken for formatting

Why this and not a CST → ast converter: the rules see the same `ast` nodes for every file,
and the converter would have to be kept in step with every node type of both trees; this
touches five constructs. Measured in docs/audit.md.
"""

from __future__ import annotations

from typing import Any


def downgrade(text: str) -> str | None:
    """The source rewritten for this interpreter's `ast`; None when libcst is not installed;
    raises ValueError when libcst cannot parse it either."""
    try:
        import libcst as cst
    except ImportError:
        return None
    try:
        module = cst.parse_module(text)
    except Exception as error:  # libcst's ParserSyntaxError and friends
        message = str(error).strip().splitlines()
        raise ValueError(message[0] if message else type(error).__name__) from None
    return str(module.visit(_transformer(cst)).code)


def _transformer(cst: Any) -> Any:
    class Downgrade(cst.CSTTransformer):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.fstring_depth = 0

        def _parenthesised(self, handler: Any) -> Any:
            kind = handler.type
            if isinstance(kind, cst.Tuple) and not kind.lpar:
                return handler.with_changes(
                    type=kind.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()]),
                    whitespace_after_except=cst.SimpleWhitespace(" "),
                )
            return handler

        def leave_ExceptHandler(self, original: Any, updated: Any) -> Any:
            return self._parenthesised(updated)

        def leave_ExceptStarHandler(self, original: Any, updated: Any) -> Any:
            return self._parenthesised(updated)

        def leave_TypeAlias(self, original: Any, updated: Any) -> Any:
            return cst.Assign(targets=[cst.AssignTarget(target=updated.name)], value=updated.value)

        def leave_FunctionDef(self, original: Any, updated: Any) -> Any:
            return updated.with_changes(type_parameters=None)

        def leave_ClassDef(self, original: Any, updated: Any) -> Any:
            return updated.with_changes(type_parameters=None)

        def visit_FormattedString(self, node: Any) -> bool:
            self.fstring_depth += 1
            return True

        def leave_FormattedString(self, original: Any, updated: Any) -> Any:
            self.fstring_depth -= 1
            if self.fstring_depth or updated.end not in {'"', "'"}:
                return updated
            nested = any(
                isinstance(part, cst.FormattedStringExpression) and updated.end in _code(cst, part)
                for part in updated.parts
            )
            if not nested:
                return updated
            triple = updated.end * 3
            return updated.with_changes(start=updated.start + updated.end * 2, end=triple)

        def leave_TemplatedString(self, original: Any, updated: Any) -> Any:
            expressions = [
                cst.Arg(value=part.expression)
                for part in updated.parts
                if isinstance(part, cst.TemplatedStringExpression)
            ]
            return cst.Call(func=cst.Name("__tstring__"), args=expressions)

    return Downgrade()


def _code(cst: Any, node: Any) -> str:
    return str(cst.Module(body=[]).code_for_node(node))
