"""Client-supplied file names made safe to store, log and send back in a header."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

MAX_FILENAME_BYTES = 200
FALLBACK_NAME = "file"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9!#$&+.^_`|~ -]")


def sanitize_filename(raw: str | None) -> str:
    """The last path segment, without control characters or leading dots, at most 200 bytes.

    A name never names a location: storage keys are generated, so this only protects what a
    browser or a shell does with the name later ("../../etc/passwd" becomes "passwd").
    """
    name = unicodedata.normalize("NFC", raw or "")
    name = _UNSAFE.sub("", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = name.strip().lstrip(".").strip()
    encoded = name.encode()[:MAX_FILENAME_BYTES]
    name = encoded.decode(errors="ignore").strip()
    return name or FALLBACK_NAME


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """`attachment` with an ASCII fallback and the exact name in RFC 6266 `filename*`."""
    fallback = _NOT_TOKEN.sub("_", filename) or FALLBACK_NAME
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
