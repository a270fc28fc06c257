"""The one pagination helper: `page`/`page_size` in, `{items, total, page, page_size, has_next}`
out, sliced in SQL and serialised from rows.

A page is one statement: the page's rows (one more than asked, so `has_next` is known without
the count) with the count of the whole result as an uncorrelated scalar subquery, which the
database evaluates once. The count is bounded: it stops at `exact_total_max + 1` rows
(`KEEL_PAGINATION_EXACT_TOTAL_MAX`), so a page of a table of millions costs what a page of a
small one does. Past that bound PostgreSQL's planner estimate of the whole result is given
instead, never less than what the page itself proves exists, and the response says so with
the header `X-Total-Estimated: true`; the body keeps SPEC's shape. SQLite has no planner
estimate and counts exactly.

Features select exactly their response's columns (Core rows, no ORM objects), turn each row
into the dict their response schema would dump, and `RowPage.render()` writes the page as
JSON once, without validating it again (`PageBody`). The routes keep
`response_model=Page[...]` for the OpenAPI document.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, ParamSpec, TypeVar

from fastapi import APIRouter, Depends, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic_core import to_json
from sqlalchemy import Integer, Select, bindparam, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from starlette.requests import HTTPConnection
from starlette.responses import Response

from keel.core.reads import PreparedSelect, Reads
from keel.core.types import PageNumber, PageSize

T = TypeVar("T")
P = ParamSpec("P")

ESTIMATED_HEADER = "X-Total-Estimated"
"""Sent (`true`) when `total` is the planner's estimate rather than a count."""

DEFAULT_EXACT_TOTAL_MAX = 10_000


class PageParams(BaseModel):
    page: int
    page_size: int
    exact_total_max: int = DEFAULT_EXACT_TOTAL_MAX

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


async def page_params(  # async: a `def` dependency would cost a thread hop
    connection: HTTPConnection,
    page: Annotated[PageNumber, Query()] = 1,
    page_size: Annotated[PageSize, Query()] = 20,
) -> PageParams:
    return PageParams(
        page=page,
        page_size=page_size,
        exact_total_max=connection.state.settings.pagination_exact_total_max,
    )


Pagination = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    """The page's schema (the routes' `response_model`); bodies are written by `RowPage`."""

    items: list[T]
    total: int
    page: int
    page_size: int
    has_next: bool


@dataclass(frozen=True, slots=True)
class RowPage:
    """One page's rows, the whole result's total and whether that total is an estimate."""

    rows: Sequence[Any]  # named rows: each column an attribute
    total: int
    estimated: bool
    params: PageParams
    has_next: bool

    def render(self, items: list[dict[str, Any]]) -> PageBody:
        """The page as JSON; `items` are the rows as their response schema dumps them."""
        body = to_json(
            {
                "items": items,
                "total": self.total,
                "page": self.params.page,
                "page_size": self.params.page_size,
                "has_next": self.has_next,
            }
        )
        return PageBody(body, estimated=self.estimated)


_ESTIMATED_MARK = b"~"


@dataclass(frozen=True, slots=True)
class PageBody:
    """A finished page: its JSON and whether its `total` is an estimate."""

    body: bytes
    estimated: bool = False

    def response(self) -> Response:
        headers = {ESTIMATED_HEADER: "true"} if self.estimated else None
        return Response(self.body, media_type="application/json", headers=headers)

    def stored(self) -> bytes:
        """For a cache of bytes: the body itself, marked in front when estimated (a JSON
        object starts with `{`), so an exact page is answered as the very bytes stored."""
        return _ESTIMATED_MARK + self.body if self.estimated else self.body

    @classmethod
    def from_stored(cls, stored: bytes) -> PageBody:
        if stored.startswith(_ESTIMATED_MARK):
            return cls(stored[len(_ESTIMATED_MARK) :], estimated=True)
        return cls(stored)


def page_route(
    router: APIRouter,
    item: type[BaseModel],
    summary: str,
    *,
    route_class: type[APIRoute] | None = None,
) -> Callable[[Callable[P, Awaitable[PageBody]]], Callable[P, Awaitable[Response]]]:
    """Register a list endpoint, `GET ""` documented as `Page[item]`, whose handler returns the
    service's `PageBody`; it is answered as those bytes (no second validation). `route_class`
    replaces the router's for this route alone (`public_cache_route`)."""

    def register(
        handler: Callable[P, Awaitable[PageBody]],
    ) -> Callable[P, Awaitable[Response]]:
        @functools.wraps(handler)
        async def respond(*args: P.args, **kwargs: P.kwargs) -> Response:
            return (await handler(*args, **kwargs)).response()

        router.add_api_route(
            "",
            respond,
            methods=["GET"],
            summary=summary,
            response_model=Page[item],  # type: ignore[valid-type]
            route_class_override=route_class,
        )
        return respond

    return register


def _bounded_count(statement: Select[Any], bound: int) -> Select[Any]:
    """Count the result up to `bound` rows. Never correlated: inside the page's statement it
    counts the whole result, not the outer row's (which reads the same table)."""
    matching = statement.with_only_columns(literal(1), maintain_column_froms=True)
    matching = matching.order_by(None).limit(bound)
    return select(func.count()).select_from(matching.correlate(None).subquery()).correlate(None)


_BUILT: dict[tuple[str, int, int], tuple[Select[Any], PreparedSelect]] = {}
"""What `fetch_page` derives from each constant statement it was given with `values` (its
paged form, its `EXPLAIN`), built and compiled once: keyed by the statement's identity (kept
alive by the entry, so an id is never reused while it is here), what was built, the bound."""


def _built_once(
    what: str, statement: Select[Any], bound: int, build: Callable[[], PreparedSelect]
) -> PreparedSelect:
    key = (what, id(statement), bound)
    cached = _BUILT.get(key)
    if cached is None or cached[0] is not statement:
        cached = _BUILT[key] = (statement, build())
    return cached[1]


def _paged(statement: Select[Any], bound: int) -> Select[Any]:
    """`statement` with the bounded count as a column and the page's LIMIT and OFFSET bound."""
    counted = _bounded_count(statement, bound).scalar_subquery().label("keel_page_total")
    limit = bindparam("keel_page_limit", type_=Integer)
    offset = bindparam("keel_page_offset", type_=Integer)
    return statement.add_columns(counted).limit(limit).offset(offset)


def _constant_page(statement: Select[Any], bound: int) -> PreparedSelect:
    return _built_once("page", statement, bound, lambda: PreparedSelect(_paged(statement, bound)))


async def fetch_page(
    reads: Reads,
    statement: Select[Any],
    params: PageParams,
    *,
    values: Mapping[str, Any] | None = None,
) -> RowPage:
    """Run `statement` (ordered, selecting the response's columns) for one page.

    One round trip for the rows and a count bounded at `params.exact_total_max + 1`; a second
    only for a page past the end (no row to carry the count) or a total beyond the bound.

    A statement built once at import, with its per-request values as bound parameters
    (`values`), has its paged form built and compiled once too (a `PreparedSelect`), and runs on the
    driver: on a list page, building the statement and SQLAlchemy's execution around it cost
    more than the database's answer (bench/README.md, per-request cost). A statement built
    per request runs through Core. Either way the rows are plain rows, read on a connection
    held only while reading (`Reads`): the app's for an endpoint with no session, the
    session's own (`ConnectionReads`) for one that loaded its caller through the session.
    """
    bound = params.exact_total_max + 1
    window = {"keel_page_limit": params.page_size + 1, "keel_page_offset": params.offset}
    constant = values is not None
    if values is None:
        values = {}
        rows = await reads.execute(_paged(statement, bound), window)
    else:
        rows = await reads.all(_constant_page(statement, bound), **values, **window)
    has_next = len(rows) > params.page_size
    del rows[params.page_size :]
    if rows:
        total = int(rows[0].keel_page_total)
    elif params.offset == 0:
        total = 0
    else:
        count = await reads.execute(_bounded_count(statement, bound), values)
        total = int(count[0][0])
    estimated = False
    if total >= bound:
        total, estimated = await _beyond_bound(reads, statement, values, constant=constant)
        # Never less than what this page proves exists.
        total = max(total, bound, params.offset + len(rows) + int(has_next))
    return RowPage(
        rows=rows,  # each also carries `keel_page_total`, which no schema reads
        total=total,
        estimated=estimated,
        params=params,
        has_next=has_next,
    )


def _constant_estimate(statement: Select[Any]) -> PreparedSelect:
    """Built per request, `_Explain` (not cacheable) was compiled anew by every large page."""
    return _built_once(
        "estimate",
        statement,
        0,
        lambda: PreparedSelect(_Explain(statement.order_by(None)), keys=("plan",)),
    )


async def _beyond_bound(
    reads: Reads, statement: Select[Any], values: Mapping[str, Any], *, constant: bool
) -> tuple[int, bool]:
    """The whole result's size once it exceeds the bound: PostgreSQL's estimate (a plan, no
    scan), SQLite's exact count."""
    unordered = statement.order_by(None)
    if reads.dialect != "postgresql":
        count = select(func.count()).select_from(unordered.subquery())
        return int((await reads.execute(count, values))[0][0]), False
    if constant:
        plan = (await reads.all(_constant_estimate(statement), **values))[0][0]
    else:
        plan = (await reads.execute(_Explain(unordered), values))[0][0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"]), True


class _Explain(Executable, ClauseElement):
    """`EXPLAIN (FORMAT JSON)` of a statement, its values still bound as parameters."""

    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return f"EXPLAIN (FORMAT JSON) {compiler.process(element.statement, **kw)}"
