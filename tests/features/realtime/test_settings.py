"""The realtime feature's settings: read from `KEEL_WS_*`, refused when out of range."""

from __future__ import annotations

import pytest

from keel.core.config import CoreSettings
from keel.features.realtime.settings import RealtimeSettings
from tests.support.settings import assert_refused, from_environment


def test_socket_settings_are_read_from_their_keel_names(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_environment(
        monkeypatch, ws_heartbeat_seconds="5", ws_queue_size="7", ws_auth_timeout_seconds="1.5"
    )
    assert settings.ws_heartbeat_seconds == 5
    assert settings.ws_queue_size == 7
    assert settings.ws_auth_timeout_seconds == 1.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ws_heartbeat_seconds", "0"),
        ("ws_queue_size", "0"),
        ("ws_queue_size", "100001"),
        ("ws_auth_timeout_seconds", "301"),
    ],
)
def test_an_out_of_range_socket_setting_is_refused_by_its_env_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    assert_refused(monkeypatch, name, value)


def test_compression_stays_core_s_the_rest_is_the_feature_s() -> None:
    """The server (core/serving.py) negotiates permessage-deflate for every socket route."""
    assert "ws_compression" in CoreSettings.model_fields
    own = set(RealtimeSettings.model_fields) - set(CoreSettings.model_fields)
    assert own == {"ws_heartbeat_seconds", "ws_queue_size", "ws_auth_timeout_seconds"}
