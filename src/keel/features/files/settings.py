"""The files feature's settings: what an upload may be and how long its pieces live.

They leave with the feature (`keel.settings` composes them with core's); the request size
limit `KEEL_MAX_UPLOAD_BYTES` stays core's, because core's middleware enforces it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from keel.core.config import CoreSettings, split_csv


class FilesSettings(CoreSettings):
    """`KEEL_UPLOAD_*`: accepted content types and the lives of upload URLs and leftovers."""

    upload_allowed_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "application/pdf",
            "text/csv",
            "text/plain",
        ]
    )
    """Content types accepted for uploads, checked against the file's bytes."""
    upload_url_ttl_seconds: int = Field(default=900, ge=30, le=7 * 86400)
    """Life of a direct-upload URL."""
    upload_abandon_grace_seconds: float = Field(default=3600, ge=0, le=7 * 86400)
    """How long after its URL expired a never-completed direct upload is deleted (row and object);
    an upload started just before expiry may still be running.
    """

    @field_validator("upload_allowed_types", mode="before")
    @classmethod
    def _parse_types(cls, value: Any) -> Any:
        return split_csv(value)
