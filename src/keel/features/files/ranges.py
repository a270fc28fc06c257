"""The one `Range` form worth serving: a single byte range (RFC 9110 §14)."""

from __future__ import annotations

import re

from keel.core.errors import RangeNotSatisfiableError

_SINGLE = re.compile(r"^bytes=(\d*)-(\d*)$")

_MAX_DIGITS = 18
_HUGE = 10**_MAX_DIGITS
"""A position of more than 18 digits is past the end of any file Keel stores, so it is read
as this instead of being parsed: Python refuses an int of 4,300+ digits (a ValueError, so a
500) and spends quadratic time on long ones."""


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else _HUGE


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) for a single satisfiable range; None to send the whole file.

    Several ranges, or a header in another unit, are answered with the whole file, which
    the RFC allows. A well-formed range wholly past the end is a 416.
    """
    if not header:
        return None
    match = _SINGLE.match(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # the final `last` bytes
        length = _position(last)
        if length == 0:
            raise _unsatisfiable(size)
        return max(size - length, 0), size
    start = _position(first)
    if last != "" and _position(last) < start:
        return None  # not a valid range at all: ignored, like an unknown unit
    end = size if last == "" else min(_position(last) + 1, size)
    if start >= size or end <= start:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> RangeNotSatisfiableError:
    return RangeNotSatisfiableError(headers={"Content-Range": f"bytes */{size}"})
