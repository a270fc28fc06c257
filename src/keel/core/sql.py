"""Small SQL helpers every repository may use."""

from __future__ import annotations

LIKE_ESCAPE = "\\"


def contains_pattern(text: str) -> str:
    """A case-folded `LIKE` pattern matching `text` anywhere, with `%` and `_` taken literally.

    Use with `.like(pattern, escape=LIKE_ESCAPE)` on a lower-cased column.
    """
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
