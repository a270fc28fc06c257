"""Every error, from any layer, has the SPEC body and the request id."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, Field, ValidationError

from keel.core.errors import (
    STATUS_CODES,
    AppError,
    FieldError,
    NotFoundError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthorizedError,
    ValidationFailedError,
)
from tests.support.assertions import assert_error_body


async def test_unknown_route_is_404_with_error_body(client: httpx.AsyncClient) -> None:
    error = assert_error_body(await client.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
    assert error["message"] == "Not found"


async def test_wrong_method_is_405_with_allow_header(client: httpx.AsyncClient) -> None:
    response = await client.post("/health")
    assert_error_body(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "GET"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/api/v1/users/me", "GET, PATCH"),  # two routes share the path
        ("PUT", "/api/v1/users/00000000-0000-4000-8000-000000000000", "DELETE, GET, PATCH"),
        ("DELETE", "/api/v1/users/me", "GET, PATCH"),  # not a user id: the path it names
    ],
)
async def test_405_allow_lists_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert_error_body(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == allow


async def test_an_id_path_that_is_not_a_uuid_is_404(client: httpx.AsyncClient) -> None:
    assert_error_body(await client.get("/api/v1/users/not-a-uuid"), 404, "NOT_FOUND")


async def test_malformed_json_is_422_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/_test/echo", content=b'{"name": "x", ', headers={"content-type": "application/json"}
    )
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    errors = error["details"]["errors"]  # type: ignore[index]
    assert errors[0]["type"] == "json_invalid"
    assert set(errors[0]) == {"loc", "msg", "type"}


async def test_schema_violation_names_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/_test/echo", json={"count": "many"})
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    locs = {tuple(e["loc"]) for e in error["details"]["errors"]}  # type: ignore[index]
    assert locs == {("body", "name"), ("body", "count")}


async def test_unexpected_exception_is_generic_500_without_leaks(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/_test/boom")
    error = assert_error_body(response, 500, "INTERNAL_ERROR")
    assert error["message"] == "Internal server error"
    assert error["details"] == {}
    for leak in ("secret detail", "/srv/keel", "SELECT", "Traceback", "RuntimeError"):
        assert leak not in response.text
    logged = [r for r in caplog.records if isinstance(r.msg, dict)]
    failures = [r for r in logged if r.msg.get("event") == "unhandled_exception"]
    assert failures, "the traceback must reach the log"
    assert failures[0].msg["exc_info"]  # rendered as a traceback by the log formatter
    assert failures[0].msg["request_id"] == error["request_id"]


async def test_app_error_carries_message_and_details(client: httpx.AsyncClient) -> None:
    error = assert_error_body(await client.get("/_test/conflict"), 409, "CONFLICT")
    assert error["message"] == "Already exists"
    assert error["details"] == {"field": "sku"}


def test_every_spec_status_has_an_error_class() -> None:
    spec = {400, 401, 402, 403, 404, 405, 409, 413, 415, 422, 429, 500, 502, 503}
    ranges = {416}  # HTTP's own answer to an unsatisfiable Range (docs/decisions.md)
    assert set(STATUS_CODES) == spec | ranges


def test_every_error_class_carries_its_spec_code() -> None:
    """The codes come from the class names (`_code_of`): pinned here against the SPEC table,
    so a renamed class cannot change a code unnoticed."""
    assert {status: cls.code for status, cls in STATUS_CODES.items()} == {
        400: "BAD_REQUEST",
        401: "UNAUTHORIZED",
        402: "PAYMENT_DECLINED",
        403: "FORBIDDEN",
        404: "NOT_FOUND",
        405: "METHOD_NOT_ALLOWED",
        409: "CONFLICT",
        413: "PAYLOAD_TOO_LARGE",
        415: "UNSUPPORTED_MEDIA_TYPE",
        416: "RANGE_NOT_SATISFIABLE",
        422: "VALIDATION_ERROR",
        429: "RATE_LIMITED",
        500: "INTERNAL_ERROR",
        502: "BAD_GATEWAY",
        503: "SERVICE_UNAVAILABLE",
    }


def test_a_named_code_wins_over_the_class_name_and_a_subclass_keeps_it() -> None:
    class TeapotError(AppError, status=418, message="I am a teapot"):
        pass

    class BrewingError(TeapotError, code="STILL_BREWING"):
        pass

    class LateBrewingError(BrewingError):
        pass

    assert (TeapotError.status_code, TeapotError.code) == (418, "TEAPOT")
    assert (LateBrewingError.status_code, LateBrewingError.code) == (418, "STILL_BREWING")
    assert 418 not in STATUS_CODES  # only the listed classes answer a bare status


def test_unauthorized_and_rate_limited_carry_their_headers() -> None:
    assert UnauthorizedError().headers["WWW-Authenticate"] == "Bearer"
    assert RateLimitedError(retry_after=17).headers["Retry-After"] == "17"


def test_one_field_error_is_the_spec_entry() -> None:
    error = ValidationFailedError.field(("body", "items", 0, "product_id"), "no such", "missing")
    assert (error.status_code, error.code, error.message) == (
        422,
        "VALIDATION_ERROR",
        "Request validation failed",
    )
    assert error.details == {
        "errors": [{"loc": ["body", "items", 0, "product_id"], "msg": "no such", "type": "missing"}]
    }
    assert error.errors == (FieldError(("body", "items", 0, "product_id"), "no such", "missing"),)
    named = ValidationFailedError.field(("header", "x"), "bad", "t", message="Why it failed")
    assert named.message == "Why it failed"


def test_several_field_errors_keep_their_order() -> None:
    error = ValidationFailedError(
        "Some are wrong",
        errors=[FieldError(("body", "b"), "second", "t"), FieldError(("body", "a"), "first", "t")],
    )
    assert [e["loc"] for e in error.details["errors"]] == [["body", "b"], ["body", "a"]]
    assert error.message == "Some are wrong"


class _Login(BaseModel):
    email: str
    password: str = Field(min_length=12)


def test_pydantic_errors_are_placed_renamed_and_stripped_of_inputs() -> None:
    with pytest.raises(ValidationError) as caught:
        _Login.model_validate({"password": "hunter2"})
    assert "hunter2" in repr(caught.value.errors())  # pydantic echoes the input ...
    error = ValidationFailedError.from_pydantic(
        caught.value.errors(), prefix=("body",), names={"email": "username"}
    )
    assert error.details["errors"] == [
        {"loc": ["body", "username"], "msg": "Field required", "type": "missing"},
        {
            "loc": ["body", "password"],
            "msg": "String should have at least 12 characters",
            "type": "string_too_short",
        },
    ]
    assert "hunter2" not in repr(error.details)  # ... a 422 does not


def test_pydantic_errors_keep_only_json_safe_parts() -> None:
    error = ValidationFailedError.from_pydantic(
        [{"loc": ("body", b"\xff"), "msg": "bad", "type": "t", "x": 1}]
    )
    assert error.details["errors"] == [{"loc": ["body", "b'\\xff'"], "msg": "bad", "type": "t"}]


def _hand_built_field_errors(path: Path) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Dict)
        and "loc" in {k.value for k in node.keys if isinstance(k, ast.Constant)}
    ]


def test_only_field_error_writes_the_loc_msg_type_shape() -> None:
    """One way to say "this field is wrong": a dict literal with a `loc` key anywhere in src/
    but `FieldError.as_dict` is a second way (and the next copy would drift)."""
    src = Path(__file__).parents[2] / "src" / "keel"
    found = {
        str(path.relative_to(src)): lines
        for path in sorted(src.rglob("*.py"))
        if (lines := _hand_built_field_errors(path))
    }
    assert set(found) == {"core/errors.py"}
    assert len(found["core/errors.py"]) == 1


def test_a_declared_row_sets_status_code_and_default_message() -> None:
    error = NotFoundError()
    assert (error.status_code, error.code, error.message) == (404, "NOT_FOUND", "Not found")
    assert NotFoundError("Order not found").message == "Order not found"


def test_a_subclass_that_declares_nothing_keeps_its_parents_row() -> None:
    class SpecialUnavailableError(ServiceUnavailableError):
        default_message = "Special backend down"

    error = SpecialUnavailableError(retry_after=3)
    assert (error.status_code, error.code) == (503, "SERVICE_UNAVAILABLE")
    assert error.message == "Special backend down"
    assert error.headers["Retry-After"] == "3"
    assert STATUS_CODES[503] is ServiceUnavailableError  # a subclass never takes over a status
