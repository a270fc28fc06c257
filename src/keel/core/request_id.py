"""The request id: kept from a valid incoming `X-Request-ID` UUID, otherwise generated.

It lives in a context variable for the duration of the request, so every log line and every
error body written while serving it can name it without passing it around.
"""

from __future__ import annotations

import os
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
    return new_request_id()


# The UUID variant's first hex digit (10xx in binary) for each random one.
_VARIANT = {f"{n:x}": f"{8 | (n & 3):x}" for n in range(16)}


def new_request_id() -> str:
    """A random (version 4) UUID in its canonical text: what `str(uuid.uuid4())` gives,
    without building a `UUID` object on every request."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


bind_request_id = _current.set
reset_request_id = _current.reset
