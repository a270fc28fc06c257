"""`Instant`, the type of every point in time a client sends (generated features use it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from keel.core.types import Instant

INSTANT: TypeAdapter[datetime] = TypeAdapter(Instant)


def test_an_iso_time_with_an_offset_is_read_in_utc() -> None:
    read = INSTANT.validate_python("2026-12-02T08:30:00+02:00")
    assert read == datetime(2026, 12, 2, 6, 30, tzinfo=UTC)
    assert read.tzinfo is UTC


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        (0, "datetime_type"),  # pydantic alone would read Unix time 0 as 1970
        (1764662400.5, "datetime_type"),
        (True, "datetime_type"),
        ("2026-12-02T08:30:00", "timezone_aware"),  # naive: names no instant
        ("0001-01-01T00:00:00+01:00", "datetime_range"),  # before year 1 in UTC
        ("tomorrow", "datetime_from_date_parsing"),
    ],
)
def test_numbers_naive_times_and_unrepresentable_times_are_refused(sent: Any, error: str) -> None:
    with pytest.raises(ValidationError) as refused:
        INSTANT.validate_python(sent)
    assert refused.value.errors()[0]["type"] == error
