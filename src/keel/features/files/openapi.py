"""The files feature's settings-dependent contract: the size limit and the accepted types."""

from __future__ import annotations

from keel.core.config import CoreSettings, settings_as
from keel.core.openapi import OpenApiAdjuster, OpenApiDocument, operations
from keel.features.files.settings import FilesSettings

BINARY = {"schema": {"type": "string", "format": "binary"}}


def document_limits(core: CoreSettings) -> OpenApiAdjuster:
    """`upload-url` states the largest size and the types this server accepts; a download
    lists the types it can send (a file is sent with the type it was stored under)."""
    settings = settings_as(FilesSettings, core)

    def adjust(document: OpenApiDocument) -> None:
        request = document["components"]["schemas"]["UploadUrlRequest"]["properties"]
        request["size"]["maximum"] = settings.max_upload_bytes
        request["content_type"]["enum"] = list(settings.upload_allowed_types)
        for _, operation in operations(document, "/files/{file_id}/content"):
            for status in ("200", "206"):
                operation["responses"][status]["content"] = dict.fromkeys(
                    settings.upload_allowed_types, BINARY
                )

    return adjust
