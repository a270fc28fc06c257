"""The imports feature's settings: how a CSV import is cut into batches and how much of its
failure it reports. They leave with the feature (`keel.settings` composes them)."""

from __future__ import annotations

from pydantic import Field

from keel.core.config import CoreSettings


class ImportsSettings(CoreSettings):
    """`KEEL_IMPORT_*`."""

    import_batch_size: int = Field(default=1000, ge=1, le=50_000)
    """Rows written per batch; progress is reported after each."""
    import_max_errors: int = Field(default=100, ge=0, le=100_000)
    """Row errors kept in an import's result."""
