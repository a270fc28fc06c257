"""Renaming Keel into a new project: `keel` → the package, `KEEL_` → the settings prefix,
`Keel` → the project's title, everywhere (code, paths, docs, Docker, CI).

What is *not* renamed: the auditor (`keel-audit`, `keel_audit`, its own distribution, which a
generated project keeps using) and words that merely contain the letters (`keelson`,
`Keelboat`). Python is renamed token by token, because one rule differs there: an identifier
such as `KeelProcess` must stay an identifier, so it gets the CamelCase name where prose gets
the title ("Acme Shop").
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass

_FSTRING_START = getattr(tokenize, "FSTRING_START", -1)
_FSTRING_END = getattr(tokenize, "FSTRING_END", -1)

_PATTERN = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"(?P<audit>keel[-_]audit)"  # the auditor keeps its name
    r"|(?P<env>KEEL_)"  # a setting: KEEL_DATABASE_URL
    r"|(?P<upper>KEEL)(?![A-Za-z0-9])"
    r"|(?P<camel>Keel)(?=[A-Z])"  # KeelProcess
    r"|(?P<title>Keel)(?![a-z])"  # the product, in prose
    r"|(?P<lower>keel)(?![a-z])"  # the package, the command: keel.core, keel_env, keel-api
    r")"
)


@dataclass(frozen=True)
class Names:
    """The names a generated project uses where Keel uses its own."""

    package: str
    env_prefix: str

    @property
    def title(self) -> str:
        return " ".join(part.capitalize() for part in self.package.split("_") if part)

    @property
    def camel(self) -> str:
        return self.title.replace(" ", "")


def rename_text(text: str, names: Names, *, identifier: bool = False) -> str:
    """`text` with Keel's names replaced; `identifier=True` keeps the result an identifier."""

    def replace(match: re.Match[str]) -> str:
        group = match.lastgroup
        if group == "audit":
            return match[0]
        if group == "env":
            return names.env_prefix
        if group == "upper":
            return names.package.upper()
        if group == "camel" or (group == "title" and identifier):
            return names.camel
        if group == "title":
            return names.title
        return names.package

    return _PATTERN.sub(replace, text)


def rename_python(source: str, names: Names) -> str:
    """Python source renamed token by token: identifiers stay identifiers, strings and comments
    read as prose. Source that does not tokenize is renamed as identifiers throughout."""
    try:
        spans = list(_prose_spans(source))
    except (tokenize.TokenError, SyntaxError):
        return rename_text(source, names, identifier=True)
    pieces: list[str] = []
    position = 0
    for start, end in spans:
        pieces.append(rename_text(source[position:start], names, identifier=True))
        pieces.append(rename_text(source[start:end], names))
        position = end
    pieces.append(rename_text(source[position:], names, identifier=True))
    return "".join(pieces)


def _prose_spans(source: str) -> Iterator[tuple[int, int]]:
    """(start, end) offsets of the strings and comments in `source`; an f-string is one span
    (Python 3.12+ splits it into parts, and its few expressions never name Keel's classes)."""
    line_starts = [0] + [match.end() for match in re.finditer("\n", source)]

    def offset(row_col: tuple[int, int]) -> int:
        return line_starts[row_col[0] - 1] + row_col[1]

    fstring_depth, fstring_start = 0, 0
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == _FSTRING_START:
            fstring_depth += 1
            fstring_start = fstring_start if fstring_depth > 1 else offset(token.start)
        elif token.type == _FSTRING_END:
            fstring_depth -= 1
            if not fstring_depth:
                yield fstring_start, offset(token.end)
        elif not fstring_depth and token.type in (tokenize.STRING, tokenize.COMMENT):
            yield offset(token.start), offset(token.end)


def rename_path(path: str, names: Names) -> str:
    """A tracked file's path in the new project (`src/keel/cli.py` → `src/acme/cli.py`)."""
    return rename_text(path, names, identifier=True)


def rename_file(path: str, content: str, names: Names) -> str:
    """One file's text in the new project, by the rules its kind needs."""
    if path.endswith((".py", ".pyi")):
        return rename_python(content, names)
    return rename_text(content, names)
