"""The files feature's settings: read from `KEEL_UPLOAD_*`, refused when out of range."""

from __future__ import annotations

import pytest

from keel.core.config import CoreSettings
from keel.features.files.settings import FilesSettings
from tests.support.settings import assert_refused, from_environment


def test_upload_settings_are_read_from_their_keel_names(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_environment(
        monkeypatch,
        upload_allowed_types="image/png, text/csv",
        upload_url_ttl_seconds="120",
        upload_abandon_grace_seconds="0",
    )
    assert settings.upload_allowed_types == ["image/png", "text/csv"]
    assert settings.upload_url_ttl_seconds == 120
    assert settings.upload_abandon_grace_seconds == 0


def test_allowed_types_may_be_a_json_list() -> None:
    settings = FilesSettings(upload_allowed_types='["application/pdf"]', _env_file=None)
    assert settings.upload_allowed_types == ["application/pdf"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("upload_url_ttl_seconds", "29"),
        ("upload_url_ttl_seconds", str(7 * 86400 + 1)),
        ("upload_abandon_grace_seconds", "-1"),
        ("upload_allowed_types", "[not json"),
    ],
)
def test_an_out_of_range_upload_setting_is_refused_by_its_env_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    assert_refused(monkeypatch, name, value)


def test_the_upload_size_limit_stays_core_s() -> None:
    """The body-limit middleware (core) enforces it, so it is no field of the feature's own."""
    own = set(FilesSettings.model_fields) - set(CoreSettings.model_fields)
    assert "max_upload_bytes" not in own
    assert own == {"upload_allowed_types", "upload_url_ttl_seconds", "upload_abandon_grace_seconds"}
