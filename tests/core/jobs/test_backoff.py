from __future__ import annotations

import pytest

from keel.core.jobs.runner import backoff_seconds


@pytest.mark.parametrize(("attempt", "middle"), [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0)])
def test_backoff_doubles_with_jitter(attempt: int, middle: float) -> None:
    delays = [backoff_seconds(attempt, 2.0, 300.0) for _ in range(200)]
    assert all(middle * 0.5 <= delay <= middle * 1.5 for delay in delays)
    assert len(set(delays)) > 1  # jittered, so jobs that failed together spread out


def test_backoff_is_capped() -> None:
    assert all(backoff_seconds(30, 2.0, 10.0) <= 15.0 for _ in range(100))
