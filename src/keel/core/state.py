"""Reading what the lifespan put in the request state, typed, as a FastAPI dependency."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from starlette.requests import HTTPConnection

T = TypeVar("T")


def from_state(name: str, _: type[T]) -> Callable[[HTTPConnection], T]:
    """A dependency returning `request.state.<name>` (set by the lifespan) as a `T`."""

    def get(connection: HTTPConnection) -> T:
        return cast(T, getattr(connection.state, name))

    get.__name__ = f"get_{name}"
    return get
