"""The files feature documents this server's own upload limits and its downloads."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from keel.main import create_app
from keel.settings import Settings
from tests.support.openapi import component


def test_upload_url_states_this_servers_limits(make_settings: Any) -> None:
    settings = make_settings(max_upload_bytes=5 * 1024 * 1024, upload_allowed_types=["image/png"])
    schema = create_app(settings).openapi()
    request = component(schema, "UploadUrlRequest")["properties"]
    assert request["size"]["maximum"] == 5 * 1024 * 1024
    assert request["content_type"]["enum"] == ["image/png"]


def test_downloads_document_the_types_they_send(settings: Settings) -> None:
    app: FastAPI = create_app(settings)
    operation = app.openapi()["paths"]["/api/v1/files/{file_id}/content"]["get"]
    for status in ("200", "206"):
        documented = set(operation["responses"][status]["content"])
        assert documented == set(settings.upload_allowed_types)
        assert "application/octet-stream" not in documented


def test_streamed_downloads_take_a_range_header_and_document_206(settings: Settings) -> None:
    paths = create_app(settings).openapi()["paths"]
    streamed = [path for path in paths if "range" in str(paths[path].get("get", {}))]
    assert "/api/v1/files/{file_id}/content" in streamed  # and whichever others stream files
    for path in streamed:
        operation = paths[path]["get"]
        assert {"200", "206"} <= set(operation["responses"]), path
        headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
        assert headers == ["range"], path
