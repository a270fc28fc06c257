"""Reading what the lifespan put in the request state, typed, as a FastAPI dependency."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

from starlette.requests import HTTPConnection

T = TypeVar("T")


def from_state(name: str, _: type[T]) -> Callable[[HTTPConnection], Coroutine[Any, Any, T]]:
    """A dependency returning `request.state.<name>` (set by the lifespan) as a `T`.

    Async on purpose: FastAPI runs plain `def` dependencies in its thread pool, and a
    thread hand-off per lookup is far dearer than the lookup.
    """

    async def get(connection: HTTPConnection) -> T:
        return cast(T, getattr(connection.state, name))

    get.__name__ = f"get_{name}"
    return get
