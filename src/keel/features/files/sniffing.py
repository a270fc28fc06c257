"""What a file really is, from its first bytes, against what the client said it is."""

from __future__ import annotations

import codecs

import puremagic

from keel.core.errors import UnsupportedMediaTypeError, ValidationFailedError

SNIFF_BYTES = 4096
TEXT = "text/plain"
_UNSPECIFIC = {"", "application/octet-stream"}


def detect(head: bytes, *, any_text: bool = False) -> str | None:
    """The type the bytes carry a signature of; `text/plain` for UTF-8 text; else None.

    With `any_text`, whatever has no signature is text: for a caller that reads the text
    itself and reports its encoding and NUL bytes more precisely than a 415 could (the CSV
    import fails the job with the offset of the first byte that is not UTF-8).
    """
    try:
        matches = puremagic.magic_string(head)
    except puremagic.PureError:
        matches = []
    if matches and matches[0].mime_type:
        return str(matches[0].mime_type)
    if any_text:
        return TEXT
    if b"\x00" in head:
        return None
    try:  # the head may end inside a multi-byte character, so decode incrementally
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    return TEXT


def accepted_type(
    declared: str | None, head: bytes, allowed: list[str], *, any_text: bool = False
) -> str:
    """The content type to store, or 415 when the bytes are not an allowed type or contradict
    the declared one. Text has no signature, so a declared `text/*` type is trusted for it."""
    if not head:
        raise ValidationFailedError.field(
            ("body", "file"), "empty file", "empty", message="The file is empty"
        )
    claimed = (declared or "").split(";", 1)[0].strip().lower()
    found = detect(head[:SNIFF_BYTES], any_text=any_text)
    if found is None:
        raise _refused("The file's content is not of a known type", allowed)
    if found == TEXT and claimed.startswith("text/"):
        found = claimed
    elif claimed not in _UNSPECIFIC and claimed != found:
        raise _refused(f"The file was sent as {claimed} but its content is {found}", allowed)
    if found not in allowed:
        raise _refused(f"Files of type {found} are not accepted", allowed)
    return found


def _refused(message: str, allowed: list[str]) -> UnsupportedMediaTypeError:
    return UnsupportedMediaTypeError(message, details={"allowed": allowed})
