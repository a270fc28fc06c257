"""The request id: kept from a valid incoming `X-Request-ID` UUID, otherwise generated.

It lives in a context variable for the duration of the request, so every log line and every
error body written while serving it can name it without passing it around.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def get_request_id() -> str | None:
    return _current.get()


def choose_request_id(incoming: bytes | None) -> str:
    """Keep an incoming UUID (any version, as sent); replace anything else."""
    if incoming:
        try:
            text = incoming.decode("ascii")
            uuid.UUID(text)
        except ValueError:  # UnicodeDecodeError is a ValueError too
            pass
        else:
            return text
    return str(uuid.uuid4())


bind_request_id = _current.set
reset_request_id = _current.reset
