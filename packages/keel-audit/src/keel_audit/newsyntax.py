"""Rewrite syntax newer than the running interpreter into older syntax, via libcst."""

from __future__ import annotations


def downgrade(text: str) -> str | None:
    """The source with new constructs rewritten on the same lines; None when libcst is not
    installed; raises ValueError when libcst cannot parse it either."""
    try:
        import libcst  # noqa: F401
    except ImportError:
        return None
    raise ValueError("not implemented yet")
