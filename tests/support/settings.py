"""Settings values shared by tests: a production configuration that passes every check.

Each feature's part is a block marked for it, so a project generated without the feature
keeps a configuration that names none of its settings.
"""

from __future__ import annotations

from typing import Any

import pytest

from keel.core.errors import ConfigError
from keel.settings import Settings, load_settings

SAFE_PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "database_url": "postgresql+asyncpg://keel:pw@db/keel",
    "jwt_secret": "p" * 48,
    "allowed_hosts": "api.example.com",
    "redis_url": "redis://redis:6379/0",
    # feature: payments
    "payment_gateway": "http",
    "payment_gateway_url": "https://gateway.example.com",
    # /feature: payments
    "_env_file": None,
}
"""Keyword arguments for `load_settings`: production, with nothing `problems()` objects to."""


def from_environment(monkeypatch: pytest.MonkeyPatch, **variables: str) -> Settings:
    """The settings these `KEEL_*` variables make (named here without the prefix: `port="1"`
    sets KEEL_PORT), with no `.env` file."""
    for name, value in variables.items():
        monkeypatch.setenv(f"KEEL_{name.upper()}", value)
    return load_settings(_env_file=None)


def assert_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """KEEL_<NAME>=value stops the settings with a ConfigError that names the variable."""
    with pytest.raises(ConfigError, match=f"KEEL_{name.upper()}"):
        from_environment(monkeypatch, **{name: value})
