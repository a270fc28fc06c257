"""The imports feature's settings: read from `KEEL_IMPORT_*`, refused when out of range."""

from __future__ import annotations

import pytest

from keel.core.config import CoreSettings
from keel.features.imports.settings import ImportsSettings
from tests.support.settings import assert_refused, from_environment


def test_import_settings_are_read_from_their_keel_names(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_environment(monkeypatch, import_batch_size="250", import_max_errors="0")
    assert settings.import_batch_size == 250
    assert settings.import_max_errors == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("import_batch_size", "0"),
        ("import_batch_size", "50001"),
        ("import_max_errors", "-1"),
        ("import_max_errors", "many"),
    ],
)
def test_an_out_of_range_import_setting_is_refused_by_its_env_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    assert_refused(monkeypatch, name, value)


def test_the_feature_owns_exactly_its_import_fields() -> None:
    own = set(ImportsSettings.model_fields) - set(CoreSettings.model_fields)
    assert own == {"import_batch_size", "import_max_errors"}
