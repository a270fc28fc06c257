"""Contract test: schemathesis drives every operation in the OpenAPI schema, in-process.

It reads the schema from the app itself, so endpoints added later are covered without editing
this file. A failure is any 5xx, or a response whose status, content type or body the schema
does not document.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from keel.core.config import load_settings
from keel.main import create_app
from tests.conftest import TEST_JWT_SECRET
from tests.support.databases import fresh_database_url

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def contract_app() -> FastAPI:
    """The app on a database of its own (the contract run commits real rows).

    Built at import because schemathesis parametrizes at collection time; the lifespan
    migrates the fresh database on the first call.
    """
    directory = Path(tempfile.mkdtemp(prefix="keel-contract-"))
    settings = load_settings(
        environment="test",
        database_url=fresh_database_url("contract", directory),
        auto_migrate=True,
        jwt_secret=TEST_JWT_SECRET,
        _env_file=None,
    )
    return create_app(settings)


schema = schemathesis.openapi.from_asgi("/openapi.json", contract_app())


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_contract(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)
