"""The one settings class: core's settings and every enabled feature's, composed.

Each feature owns its settings in `features/<name>/settings.py` (a `CoreSettings` subclass),
so deleting the feature takes them along; this module is the one place that lists them, one
import and one base each (`keel new project` drops a left-out feature's two lines). Core
reaches the class by name (`core.config.SETTINGS_CLASS`) and passes it around typed as
`CoreSettings`; a feature reads its own fields through `core.dependencies.settings_of` or
`core.config.settings_as`.
"""

from __future__ import annotations

from typing import Any

from keel.core.config import CoreSettings, build_settings, diagnose_settings, settings_as
from keel.features.files.settings import FilesSettings
from keel.features.imports.settings import ImportsSettings
from keel.features.payments.settings import PaymentsSettings
from keel.features.realtime.settings import RealtimeSettings


class Settings(
    FilesSettings,
    ImportsSettings,
    PaymentsSettings,
    RealtimeSettings,
    CoreSettings,
):
    """Every setting this service reads: `KEEL_*` environment variables or `.env`."""


def load_settings(**overrides: Any) -> Settings:
    """`core.config.build_settings`, typed as the composed class."""
    return settings_as(Settings, build_settings(**overrides))


def diagnose(**overrides: Any) -> tuple[Settings | None, list[str]]:
    """`core.config.diagnose_settings`, typed as the composed class."""
    settings, problems = diagnose_settings(**overrides)
    return (None if settings is None else settings_as(Settings, settings)), problems
