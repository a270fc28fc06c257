"""What every streamed download route shares: the `Range` header it honours and the answers
it documents (200 with the whole body, 206 with one part), so file downloads and product
images declare them once."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import StreamingResponse

from keel.core.types import Text

RangeHeader = Annotated[Text | None, Header(alias="range")]
"""A single `bytes=` range (parsed by the files feature); absent means the whole body."""


def streamed(content_type: str) -> dict[str, Any]:
    """The route keywords of a streamed download of `content_type` (`image/*`, ...)."""
    return {
        "response_class": StreamingResponse,
        "responses": {200: {"content": {content_type: {}}}, 206: {"description": "Part"}},
    }
