"""The composed settings class: every feature's settings in it, core naming none of them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import keel
from keel.core.config import (
    SETTINGS_CLASS,
    CoreSettings,
    build_settings,
    get_settings,
    settings_as,
    settings_class,
)
from keel.features.registry import ENABLED
from keel.settings import Settings, load_settings

SOURCE = Path(keel.__file__).parent
FEATURE_KINDS = [kind for kind in Settings.__mro__[1:] if issubclass(kind, CoreSettings)]
FEATURE_KINDS.remove(CoreSettings)


def own_fields(kind: type[CoreSettings]) -> set[str]:
    return set(kind.model_fields) - set(CoreSettings.model_fields)


def test_the_composed_class_is_the_one_core_builds() -> None:
    assert SETTINGS_CLASS == "keel.settings:Settings"
    assert settings_class() is Settings
    assert type(build_settings(_env_file=None)) is Settings
    assert type(get_settings()) is Settings


def test_every_feature_s_fields_are_in_the_composed_class_once() -> None:
    fields = [name for kind in FEATURE_KINDS for name in own_fields(kind)]
    assert len(fields) == len(set(fields)), "two features define the same setting"
    assert set(fields) <= set(Settings.model_fields)
    assert set(Settings.model_fields) == set(CoreSettings.model_fields) | set(fields)
    assert all(own_fields(kind) for kind in FEATURE_KINDS), "a feature class with no setting"


def test_each_feature_settings_class_lives_in_an_enabled_feature_s_package() -> None:
    for kind in FEATURE_KINDS:
        match = re.fullmatch(r"keel\.features\.(\w+)\.settings", kind.__module__)
        assert match, kind.__module__
        assert match[1] in ENABLED, kind


def test_core_names_no_feature_setting_and_imports_no_feature() -> None:
    names = {kind.__name__ for kind in FEATURE_KINDS}
    names |= {name for kind in FEATURE_KINDS for name in own_fields(kind)}
    names |= {f"KEEL_{name.upper()}" for name in list(names)}
    for path in sorted((SOURCE / "core").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        named = {name for name in names if re.search(rf"\b{name}\b", text)}
        assert not named, f"{path} names {sorted(named)}"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("keel.features"), path
            elif isinstance(node, ast.Import):
                assert not any(alias.name.startswith("keel.features") for alias in node.names)


def test_a_feature_reads_its_settings_from_the_composed_object() -> None:
    settings = build_settings(_env_file=None)
    for kind in FEATURE_KINDS:
        assert settings_as(kind, settings) is settings


def test_core_s_class_alone_is_refused_where_a_feature_s_is_needed() -> None:
    """A test or tool that builds `CoreSettings` by hand hears which class it needs, rather
    than an AttributeError on the feature's first field."""
    core = CoreSettings(_env_file=None)
    for kind in FEATURE_KINDS:
        with pytest.raises(TypeError, match=f"not a {kind.__name__}"):
            settings_as(kind, core)


def test_load_settings_is_typed_as_the_composed_class() -> None:
    assert isinstance(load_settings(_env_file=None), Settings)


def test_a_settings_class_that_is_no_core_settings_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from keel.core import config

    monkeypatch.setattr(config, "SETTINGS_CLASS", "keel.core.errors:ConfigError")
    settings_class.cache_clear()
    try:
        with pytest.raises(TypeError, match="is not a CoreSettings class"):
            settings_class()
    finally:
        settings_class.cache_clear()
