"""The OpenAPI document says what the server accepts and sends: no more, no less.

schemathesis (tests/test_contract.py) finds these by fuzzing; these tests pin each rule down
directly, so a regression names itself.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from keel.main import create_app
from keel.settings import Settings
from tests.support.openapi import component


@pytest.fixture
def document(settings: Settings) -> dict[str, Any]:
    return create_app(settings).openapi()


def nullable(schema: dict[str, Any]) -> bool:
    branches = schema.get("anyOf", [schema])
    return any(branch.get("type") == "null" for branch in branches) or "default" in schema


def patch_bodies(document: dict[str, Any]) -> list[str]:
    names = []
    for item in document["paths"].values():
        if "patch" in item:
            ref = item["patch"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            names.append(ref.rsplit("/", 1)[1])
    return names


def test_every_patch_body_is_found(document: dict[str, Any]) -> None:
    found = patch_bodies(document)
    assert {"AdminUserUpdate", "MeUpdate"} <= set(found)  # core's; features may add more
    assert all(name.endswith("Update") for name in found), found


def test_no_patch_field_is_documented_as_nullable(document: dict[str, Any]) -> None:
    """`{"password": null}` is refused, so the schema must not offer it (or a null default)."""
    for name in patch_bodies(document):
        schema = component(document, name)
        assert schema["additionalProperties"] is False
        for field, field_schema in schema["properties"].items():
            assert not nullable(field_schema), f"{name}.{field}: {field_schema}"
    assert component(document, "AdminUserUpdate")["properties"]["full_name"]["type"] == "string"


def test_a_new_password_or_email_is_documented_with_the_current_password(
    document: dict[str, Any],
) -> None:
    assert component(document, "MeUpdate")["dependentRequired"] == {
        "password": ["current_password"],
        "email": ["current_password"],
    }


def operations_of(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_operation_ids_are_unique_kebab_case_tag_and_handler(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations_of(document)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)+", operation_id) for operation_id in ids), ids
    assert {"auth-register", "auth-login", "users-read-me"} <= set(ids)
    # FastAPI's default names (`register_api_v1_auth_register_post`) are gone everywhere,
    # including the generated form body's schema name.
    assert not [name for name in document["components"]["schemas"] if "api_v1" in name]


def test_every_operation_has_a_written_summary(document: dict[str, Any]) -> None:
    generated = [
        f"{method} {path}"
        for method, path, operation in operations_of(document)
        # FastAPI's fallback is the handler's name in title case ("Read Me").
        if operation["summary"]
        == operation["operationId"].split("-", 1)[1].replace("-", " ").title()
    ]
    assert generated == []


def test_error_statuses_follow_the_operation_shape(document: dict[str, Any]) -> None:
    paths = document["paths"]
    error_body = {"$ref": "#/components/schemas/ErrorResponse"}
    me = paths["/api/v1/users/me"]["get"]["responses"]
    assert me["401"]["content"]["application/json"]["schema"] == error_body
    assert "404" not in me  # no resource id in the path
    assert "422" not in me  # nothing to validate
    user = paths["/api/v1/users/{user_id}"]["delete"]["responses"]
    assert {"401", "404", "429"} <= set(user)
    assert "422" not in user  # a malformed path id is a 404, not a 422
    register = paths["/api/v1/auth/register"]["post"]["responses"]
    assert {"422", "429"} <= set(register)
    assert "401" not in register
    health = paths["/health"]["get"]["responses"]
    assert not {"401", "404", "422", "429"} & set(health)  # probes are never limited


def test_the_login_form_says_username_is_the_email(document: dict[str, Any]) -> None:
    form = document["paths"]["/api/v1/auth/token"]["post"]["requestBody"]
    ref = form["content"]["application/x-www-form-urlencoded"]["schema"]["$ref"]
    schema = component(document, ref.rsplit("/", 1)[1])
    assert "email" in schema["properties"]["username"]["description"]
