"""Renaming Keel into a new project: the tricky cases, one rule each."""

from __future__ import annotations

import pytest

from keel.scaffold.rename import Names, rename_file, rename_path, rename_python, rename_text

ACME = Names("acme", "ACME_")
SHOP = Names("acme_shop", "SHOP_")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("from keel.core import config", "from acme.core import config"),
        ("keel = 'keel.cli:main'", "acme = 'acme.cli:main'"),
        ("KEEL_DATABASE_URL=sqlite:///./var/keel.db", "ACME_DATABASE_URL=sqlite:///./var/acme.db"),
        ("x-keel-environment: &keel-environment", "x-acme-environment: &acme-environment"),
        ("Keel's own audit", "Acme's own audit"),
        ("KEEL or keel", "ACME or acme"),
        ("tests/test_keel_cli.py", "tests/test_acme_cli.py"),
    ],
)
def test_keel_becomes_the_project_wherever_it_is_a_name(before: str, after: str) -> None:
    assert rename_text(before, ACME) == after


@pytest.mark.parametrize(
    "unrelated",
    [
        "keel-audit --fail-on warning",
        "import keel_audit.cli",
        "[tool.keel-audit]",
        "packages/keel-audit/src/keel_audit/rules/api.py",
        ".venv/bin/keel-audit",
        "a keelson and a Keelboat",
        "keelhauled",
        "boundary = 'keelboundary'",
        "KEELED",
    ],
)
def test_the_auditor_and_words_that_merely_contain_keel_are_left_alone(unrelated: str) -> None:
    assert rename_text(unrelated, ACME) == unrelated


def test_the_env_prefix_is_its_own_choice_not_the_name_upper_cased() -> None:
    assert rename_text("export KEEL_TEST_REDIS_URL", SHOP) == "export SHOP_TEST_REDIS_URL"


def test_prose_gets_the_title_and_camel_case_gets_the_class_name() -> None:
    assert rename_text("Keel: see KeelProcess", SHOP) == "Acme Shop: see AcmeShopProcess"


@pytest.mark.parametrize(
    ("source", "names", "renamed"),
    [
        pytest.param(
            'Keel = "Keel"  # Keel\nclass KeelImport: ...\n',
            SHOP,
            'AcmeShop = "Acme Shop"  # Acme Shop\nclass AcmeShopImport: ...\n',
            id="identifiers stay identifiers, strings and comments read as prose",
        ),
        pytest.param(
            'os.environ[f"KEEL_{name.upper()}"] = f"{{Keel}} {keel_version}"\n',
            SHOP,
            'os.environ[f"SHOP_{name.upper()}"] = f"{{Acme Shop}} {acme_shop_version}"\n',
            id="f-strings are prose with their braces intact",
        ),
        pytest.param(
            'Keel = ("Keel"\n',
            SHOP,
            'AcmeShop = ("AcmeShop"\n',
            id="source that does not tokenize is renamed as identifiers",
        ),
        pytest.param(
            "from keel_audit.cli import main\nfrom keel.cli import cli\n",
            ACME,
            "from keel_audit.cli import main\nfrom acme.cli import cli\n",
            id="imports of the auditor survive next to renamed ones",
        ),
        pytest.param(
            'def f():\n    """Keel\n    keel.cli\n    """\n    return keel.x\n',
            SHOP,
            'def f():\n    """Acme Shop\n    acme_shop.cli\n    """\n    return acme_shop.x\n',
            id="a multi-line docstring keeps the offsets after it",
        ),
    ],
)
def test_python_is_renamed_token_by_token(source: str, names: Names, renamed: str) -> None:
    assert rename_python(source, names) == renamed


def test_paths_move_with_the_package_but_never_into_prose() -> None:
    assert rename_path("src/keel/features/Keel.md", SHOP) == "src/acme_shop/features/AcmeShop.md"
    assert rename_path("packages/keel-audit/README.md", SHOP) == "packages/keel-audit/README.md"


def test_rename_file_chooses_the_rules_by_the_files_kind() -> None:
    assert rename_file("notes.md", "Keel", SHOP) == "Acme Shop"
    assert rename_file("x.py", "Keel = 1\n", SHOP) == "AcmeShop = 1\n"


def test_the_title_and_class_name_come_from_the_package_name() -> None:
    assert (SHOP.title, SHOP.camel) == ("Acme Shop", "AcmeShop")
