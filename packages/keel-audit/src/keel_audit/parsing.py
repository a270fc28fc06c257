"""Bytes → `ast.Module`, for code written for Python 3.8 through 3.14 on any interpreter.

The stdlib parser reads the file first (fast, and exact). When it rejects the syntax, the
file may simply be newer than the running interpreter (`except A, B:` is 3.14, `type X = …`
and `def f[T]()` are 3.12, nested same-quote f-strings are 3.12). Then libcst, which reads
3.0-3.15, parses it, a small transformer rewrites the new constructs into older ones that
mean the same to the rules *on the same lines*, and `ast` parses the result. libcst is an
optional dependency (`keel-audit[newsyntax]`), imported only when needed: on a project
written for the running interpreter it is never loaded.
"""

from __future__ import annotations

import ast
import io
import tokenize
import warnings
from dataclasses import dataclass

from keel_audit.newsyntax import downgrade


@dataclass(frozen=True)
class Parsed:
    tree: ast.Module
    text: str
    parser: str


@dataclass(frozen=True)
class ParseFailure:
    reason: str


def decode(data: bytes) -> str | ParseFailure:
    if b"\x00" in data[:8192]:
        return ParseFailure("not Python: the file contains NUL bytes (binary data)")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        return ParseFailure(f"could not decode as utf-8 (no other encoding declared): {error}")
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as error:
        return ParseFailure(f"could not decode as {encoding}: {error}")


def _ast(text: str, relpath: str) -> ast.Module:
    with warnings.catch_warnings():  # invalid escape sequences etc. are not our findings
        warnings.simplefilter("ignore")
        return ast.parse(text, filename=relpath)


def parse_source(data: bytes, relpath: str) -> Parsed | ParseFailure:
    text = decode(data)
    if isinstance(text, ParseFailure):
        return text
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        return Parsed(_ast(text, relpath), text, "ast")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        first_error = _describe(error)
        if not _may_be_newer_syntax(error):
            return ParseFailure(f"could not parse: {first_error}")
    try:
        rewritten = downgrade(text)
    except ValueError:  # libcst agrees it is not Python: the stdlib's message is clearer
        return ParseFailure(f"could not parse: {first_error}")
    if rewritten is None:
        return ParseFailure(
            f"could not parse: {first_error} (install keel-audit[newsyntax] to read syntax "
            "newer than this interpreter)"
        )
    try:
        return Parsed(_ast(rewritten, relpath), text, "libcst")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        return ParseFailure(f"could not parse: {first_error}; after libcst: {_describe(error)}")


def _may_be_newer_syntax(error: BaseException) -> bool:
    """Only a plain syntax error can be syntax this interpreter is too old for. Nesting past
    the parser's limits is not: libcst's native parser would recurse until the stack
    overflows (a crash, not an exception), so such files are reported, never handed on."""
    if not isinstance(error, SyntaxError) or isinstance(error, IndentationError):
        return False
    message = (error.msg or "").lower()
    return "too many nested" not in message and "too deeply nested" not in message


def _describe(error: BaseException) -> str:
    if isinstance(error, SyntaxError):
        return f"{error.msg} at line {error.lineno}"
    if isinstance(error, RecursionError):
        return "nesting too deep"
    return f"{type(error).__name__}: {error}"
