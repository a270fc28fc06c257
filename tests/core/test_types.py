"""Every input the OpenAPI document lists refuses a NUL string and a 64-bit-overflowing integer.

The cases are read from the app's own schema, so a parameter or body field added later is
covered without editing this file: a string gets "a\\u0000b", an integer gets 2**63, and the
answer must be a 422 in the error body that names that very input. (Before the shared types,
these reached SQLite or PostgreSQL and came back as 500s, or were stored.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from keel.core.types import SAFE_INT_MAX
from keel.main import create_app
from keel.settings import load_settings
from tests.conftest import TEST_JWT_SECRET
from tests.support.accounts import Account

NUL = "a\x00b"
TOO_BIG = 2**63
METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    where: str  # query | header | path | body | form
    loc: tuple[str | int, ...]  # the field's place inside its parameter or body
    kind: str  # string | integer

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.path} {self.where}:{'.'.join(map(str, self.loc))}"


def _schema() -> dict[str, Any]:
    settings = load_settings(environment="test", jwt_secret=TEST_JWT_SECRET, _env_file=None)
    return create_app(settings).openapi()


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    for key in ("anyOf", "oneOf"):
        if key in node:  # `X | None`: the non-null branch is what a client fills in
            branches = [_resolve(schema, b) for b in node[key] if b.get("type") != "null"]
            return branches[0]
    return node


def _leaves(
    schema: dict[str, Any], node: dict[str, Any], loc: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every string and integer a client can write in this (resolved) schema, with its place."""
    node = _resolve(schema, node)
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        for name, child in node.get("properties", {}).items():
            yield from _leaves(schema, child, (*loc, name))
    elif kind == "array":
        yield from _leaves(schema, node["items"], (*loc, 0))
    elif kind in ("string", "integer") and node.get("format") != "binary":
        yield loc, node


def _cases(schema: dict[str, Any]) -> Iterator[Case]:
    for path, item in schema["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            for parameter in operation.get("parameters", []):
                node = _resolve(schema, parameter["schema"])
                if node.get("type") in ("string", "integer"):
                    yield Case(method, path, parameter["in"], (parameter["name"],), node["type"])
            content = operation.get("requestBody", {}).get("content", {})
            for media, where in (
                ("application/json", "body"),
                ("application/x-www-form-urlencoded", "form"),
            ):
                if media in content:
                    for loc, node in _leaves(schema, content[media]["schema"]):
                        yield Case(method, path, where, loc, node["type"])


def _integer_schemas(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for case in _cases(schema):
        if case.kind == "integer":
            yield case.id, _schema_of(schema, case)


def _schema_of(schema: dict[str, Any], case: Case) -> dict[str, Any]:
    operation = schema["paths"][case.path][case.method]
    if case.where in ("body", "form"):
        media = "application/json" if case.where == "body" else "application/x-www-form-urlencoded"
        content = operation["requestBody"]["content"][media]["schema"]
        return dict(_leaves(schema, content))[case.loc]
    (parameter,) = (p for p in operation["parameters"] if p["name"] == case.loc[0])
    return _resolve(schema, parameter["schema"])


SCHEMA = _schema()
CASES = list(_cases(SCHEMA))


def test_the_schema_lists_inputs_of_both_kinds() -> None:
    """Guards the walker itself: if it found nothing, every test below would pass vacuously.
    Accounts, always there, take query integers and strings, body strings and path ids; every
    kind of parameter an enabled feature declares (headers, say) must be found as well."""
    kinds = {(case.where, case.kind) for case in CASES}
    assert {("query", "integer"), ("query", "string"), ("body", "string")} <= kinds
    assert ("path", "string") in kinds
    declared = {
        (parameter["in"], _resolve(SCHEMA, parameter["schema"]).get("type"))
        for item in SCHEMA["paths"].values()
        for method in METHODS
        for parameter in item.get(method, {}).get("parameters", [])
    }
    assert {kind for kind in declared if kind[1] in ("string", "integer")} <= kinds


@pytest.mark.parametrize(("case_id", "node"), list(_integer_schemas(SCHEMA)))
def test_every_integer_input_states_a_safe_range(case_id: str, node: dict[str, Any]) -> None:
    assert "minimum" in node, f"{case_id} has no stated minimum: {node}"
    assert "maximum" in node, f"{case_id} has no stated maximum: {node}"
    assert -SAFE_INT_MAX <= node["minimum"] <= node["maximum"] <= SAFE_INT_MAX, case_id


def _nested(loc: tuple[str | int, ...], value: Any) -> Any:
    if not loc:
        return value
    head, *rest = loc
    inner = _nested(tuple(rest), value)
    return [inner] if isinstance(head, int) else {head: inner}


def _request(case: Case, account: Account) -> dict[str, Any]:
    value: Any = NUL if case.kind == "string" else TOO_BIG
    url = case.path
    for name in _path_names(case.path):
        filler = quote(NUL) if (case.where, case.loc) == ("path", (name,)) else str(uuid.uuid4())
        url = url.replace("{" + name + "}", filler)
    request: dict[str, Any] = {"method": case.method.upper(), "url": url}
    headers = dict(account.headers)
    if case.where == "query":
        request["params"] = {case.loc[0]: str(value)}
    elif case.where == "header":
        headers[str(case.loc[0])] = str(value)
    elif case.where == "body":
        request["json"] = _nested(case.loc, value)
    elif case.where == "form":
        request["data"] = {case.loc[0]: str(value)}
    request["headers"] = headers
    return request


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_poisoned_input_is_refused_in_the_error_body(
    case: Case, client: httpx.AsyncClient, admin: Account
) -> None:
    response = await client.request(**_request(case, admin))

    if case.where == "path":  # ids are matched as UUIDs: anything else names no resource
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "NOT_FOUND"
        return
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    where = "body" if case.where == "form" else case.where
    locs = [tuple(item["loc"]) for item in error["details"]["errors"]]
    named = {(where, *case.loc)}
    if case.loc and isinstance(case.loc[-1], int):  # a list of strings is refused as a whole
        named.add((where, *case.loc[:-1]))
    assert named & set(locs), f"{case.id}: no error names it in {locs}"
