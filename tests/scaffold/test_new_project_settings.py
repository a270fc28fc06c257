"""`keel new project` takes a left-out feature's settings with it, from every file.

The plans are made from this checkout (nothing is written): the left-out settings' fields,
classes and `ACME_*` names must appear in no planned file but Keel's own record and tools.
"""

from __future__ import annotations

import ast
import re
from functools import cache

import pytest

from keel.core.config import CoreSettings
from keel.features.files.settings import FilesSettings
from keel.features.imports.settings import ImportsSettings
from keel.features.payments.settings import PaymentsSettings
from keel.features.realtime.settings import RealtimeSettings
from keel.scaffold.project import Plan, choose, find_source, plan_project
from keel.scaffold.project_layout import OPTIONAL, drop_settings_lines
from keel.scaffold.rename import Names

NAMES = Names("acme", "ACME_")
SETTINGS_OF: dict[str, type[CoreSettings]] = {
    "files": FilesSettings,
    "imports": ImportsSettings,
    "payments": PaymentsSettings,
    "realtime": RealtimeSettings,
}
EXEMPT = ("docs/decisions.md", "bench/", "tests/test_cluster.py")
"""Keel's record of its decisions, its benchmarks and the multi-process test of every feature
together (docs/decisions.md, "Settings owned by their features")."""
SHAPES = {
    "--without orders": (None, ["orders"]),
    "--without files": (None, ["files"]),
    "--with none": ([], None),
}


@cache
def planned(shape: str) -> Plan:
    with_, without = SHAPES[shape]
    root = find_source()
    return plan_project(root, NAMES, choose(root, with_, without), command=shape)


def dropped(plan: Plan) -> set[str]:
    return set(OPTIONAL - plan.choice.packages) & set(SETTINGS_OF)


def left_out_names(plan: Plan) -> set[str]:
    names: set[str] = set()
    for feature in dropped(plan):
        kind = SETTINGS_OF[feature]
        fields = set(kind.model_fields) - set(CoreSettings.model_fields)
        names |= {kind.__name__, *fields}
        names |= {f"{prefix}{field.upper()}" for field in fields for prefix in ("ACME_", "KEEL_")}
    return names


def text_of(plan: Plan, path: str) -> str:
    return plan.files[path].decode("utf-8")


@pytest.mark.parametrize("shape", SHAPES)
def test_no_planned_file_names_a_left_out_feature_s_settings(shape: str) -> None:
    plan = planned(shape)
    names = left_out_names(plan)
    assert names, "the shape leaves out no feature with settings"
    pattern = re.compile(rf"\b({'|'.join(sorted(names, key=len, reverse=True))})\b")
    found = {}
    for path, content in plan.files.items():
        if path.startswith(EXEMPT):
            continue
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if hits := sorted(set(pattern.findall(text))):
            found[path] = hits
    assert found == {}


@pytest.mark.parametrize("shape", SHAPES)
def test_the_settings_module_composes_exactly_the_kept_features(shape: str) -> None:
    plan = planned(shape)
    tree = ast.parse(text_of(plan, "src/acme/settings.py"))
    (composed,) = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    bases = [base.id for base in composed.bases if isinstance(base, ast.Name)]
    kept = [kind.__name__ for name, kind in SETTINGS_OF.items() if name not in dropped(plan)]
    assert bases == [*kept, "CoreSettings"]
    imported = {alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
                for alias in node.names}  # fmt: skip
    assert set(kept) <= imported
    assert not {kind.__name__ for kind in SETTINGS_OF.values()} - set(kept) & imported


def test_a_kept_feature_keeps_its_settings_and_core_keeps_its_own() -> None:
    env = text_of(planned("--without orders"), ".env.example")
    assert "ACME_UPLOAD_ALLOWED_TYPES=" in env
    assert "ACME_WS_QUEUE_SIZE=" in env
    assert "# feature: files" in env  # the markers of what stays, for the next generation
    bare = text_of(planned("--with none"), ".env.example")
    for core in ("ACME_MAX_UPLOAD_BYTES=", "ACME_WS_COMPRESSION=", "ACME_IDEMPOTENCY_TTL_HOURS="):
        assert core in bare
    assert "feature:" not in bare
    compose = text_of(planned("--with none"), "docker-compose.yml")
    assert "ACME_JOB_BROKER: redis" in compose


SOURCE = """\
from keel.core.config import CoreSettings
from keel.features.files.settings import FilesSettings
from keel.features.payments.settings import PaymentsSettings


class Settings(
    FilesSettings,
    PaymentsSettings,
    CoreSettings,
):
    pass
"""


def test_settings_lines_go_only_for_the_features_named() -> None:
    kept = drop_settings_lines(SOURCE, {"payments", "orders"})
    assert "PaymentsSettings" not in kept
    assert kept.count("FilesSettings") == 2
    assert "    CoreSettings,\n" in kept
    compile(kept, "settings.py", "exec")


def test_no_feature_named_or_an_unknown_one_changes_nothing() -> None:
    assert drop_settings_lines(SOURCE, set()) == SOURCE
    assert drop_settings_lines(SOURCE, {"catalog", "nonexistent"}) == SOURCE


def test_a_base_of_the_same_name_outside_a_dropped_import_stays() -> None:
    """Only a class the dropped feature's import line brought in goes, not any `X,` line."""
    source = SOURCE + "\nVALUES = (\n    FilesSettings,\n)\n"
    kept = drop_settings_lines(source, {"payments"})
    assert kept.count("FilesSettings,") == 2
