"""The ASGI entry point `keel.main:app` used by `fastapi run` and plain uvicorn."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

import keel.main
from keel.core.errors import ConfigError


def test_app_is_built_lazily_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("KEEL_APP_NAME", "LazyKeel")
    monkeypatch.delattr(keel.main, "app", raising=False)
    application = keel.main.app
    assert isinstance(application, FastAPI)
    assert application.title == "LazyKeel"
    assert keel.main.app is application  # built once
    monkeypatch.delattr(keel.main, "app")


def test_unknown_attribute_still_raises() -> None:
    with pytest.raises(AttributeError):
        _ = keel.main.nothing_here  # type: ignore[attr-defined]


def test_factory_refuses_unsafe_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_ENVIRONMENT", "production")
    with pytest.raises(ConfigError, match="KEEL_JWT_SECRET"):
        keel.main.create_app()


def test_docs_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_DOCS_ENABLED", "false")
    application = keel.main.create_app()
    paths = {getattr(route, "path", None) for route in application.routes}
    assert "/docs" not in paths
    assert "/openapi.json" not in paths
