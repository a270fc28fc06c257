"""`keel new project`: refusals (nothing written), feature choice, and the mechanics of a
generation on a tiny tree in the contract's layout (tests/scaffold/new_project_tree.py)."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import keel
from keel.cli import cli
from keel.scaffold import project_cli
from keel.scaffold.project import (
    Choice,
    ScaffoldError,
    allow_grown_lines,
    choose,
    find_source,
    new_project,
    validate_env_prefix,
    validate_name,
)
from keel.scaffold.project_layout import (
    drop_marked_blocks,
    drop_registry_lines,
    remove_features,
)
from keel.scaffold.rename import Names, rename_file, rename_path
from tests.scaffold import new_project_tree

runner = CliRunner()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return new_project_tree.build(tmp_path_factory.mktemp("keel-source"))


@pytest.fixture(autouse=True)
def no_git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a fresh machine: no user.name/user.email anywhere, so the fixed author is used."""
    empty = tmp_path / "gitconfig"
    empty.write_text("", encoding="utf-8")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def generate(source: Path, target: Path, **options: object) -> list[str]:
    said: list[str] = []
    arguments: dict[str, object] = {"name": "acme", "env_prefix": None, "with_": None}
    arguments |= {"without": None, **options}
    new_project(target, source=source, lock=False, say=said.append, **arguments)  # type: ignore[arg-type]
    return said


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Acme", "lowercase Python identifier"),
        ("acme-shop", "lowercase Python identifier"),
        ("1acme", "lowercase Python identifier"),
        ("_acme", "lowercase Python identifier"),
        ("acme_", "lowercase Python identifier"),
        ("", "lowercase Python identifier"),
        ("class", "keyword"),
        ("match", "keyword"),
        ("list", "builtin"),
        ("json", "standard-library"),
        ("asyncio", "standard-library"),
        ("fastapi", "dependency"),
        ("sqlalchemy", "dependency"),
        ("keel", "Keel's tree"),
        ("keel_audit", "Keel's tree"),
        ("tests", "Keel's tree"),
    ],
)
def test_a_name_that_would_clash_or_is_no_identifier_is_refused(name: str, reason: str) -> None:
    with pytest.raises(ScaffoldError, match=reason):
        validate_name(name)


def test_a_good_name_is_accepted() -> None:
    assert validate_name("acme_shop") == "acme_shop"


@pytest.mark.parametrize("prefix", ["acme_", "ACME", "1ACME_", "AC-ME_", ""])
def test_an_env_prefix_that_is_no_upper_case_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ScaffoldError, match="--env-prefix"):
        validate_env_prefix(prefix)


def test_a_non_empty_directory_is_refused_and_left_as_it_was(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine", encoding="utf-8")
    result = runner.invoke(cli, ["new", "project", str(target), "--name", "acme", "--with", "none"])
    assert result.exit_code == 2
    assert "is not empty" in result.output
    assert [path.name for path in target.iterdir()] == ["keep.txt"]


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("", encoding="utf-8")
    result = runner.invoke(cli, ["new", "project", str(target), "--name", "acme", "--with", "none"])
    assert (result.exit_code, "is not empty" in result.output) == (2, True)


def test_an_unknown_feature_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    result = runner.invoke(
        cli, ["new", "project", str(tmp_path / "x"), "--name", "acme", "--with", "catalog,blog"]
    )
    assert result.exit_code == 2
    assert "unknown feature blog" in result.output
    assert "catalog, orders, files, jobs, realtime" in result.output
    assert not (tmp_path / "x").exists()


def test_a_feature_both_kept_and_left_out_is_refused(tmp_path: Path) -> None:
    arguments = ["--name", "acme", "--with", "files,jobs", "--without", "jobs"]
    result = runner.invoke(cli, ["new", "project", str(tmp_path / "x"), *arguments])
    assert result.exit_code == 2
    assert "--with and --without both name jobs" in result.output


def test_a_bad_name_is_refused_by_the_command_with_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["new", "project", str(tmp_path / "x"), "--name", "json"])
    assert result.exit_code == 2
    assert "standard-library" in result.output


def test_without_a_checkout_the_command_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = tmp_path / "site-packages" / "keel" / "__init__.py"
    wheel.parent.mkdir(parents=True)
    wheel.write_text("", encoding="utf-8")
    monkeypatch.setattr(keel, "__file__", str(wheel))
    with pytest.raises(ScaffoldError, match=r"Clone Keel with git.*docs/new-project\.md"):
        find_source()
    result = runner.invoke(cli, ["new", "project", str(tmp_path / "x"), "--name", "acme"])
    assert result.exit_code == 2
    assert "not in one" in result.output


def test_the_running_checkout_is_found_from_the_package() -> None:
    assert (find_source() / "src" / "keel" / "__init__.py").is_file()


def test_an_unclosed_or_stray_marker_is_reported_with_its_place() -> None:
    with pytest.raises(ValueError, match=r"README.md:1: marker for 'catalog' is never closed"):
        drop_marked_blocks("<!-- feature: catalog -->\ntext\n", set(), where="README.md")
    with pytest.raises(ValueError, match=r"x:2: closing marker for 'files' has no opening"):
        drop_marked_blocks("a\n# /feature: files\n", set(), where="x")


# -- choosing features ------------------------------------------------------------------------


def test_leaving_out_catalog_leaves_out_what_requires_it_and_says_so(source: Path) -> None:
    choice = choose(source, None, ["catalog"])
    assert choice.options == ("files", "jobs", "realtime")
    assert choice.packages == {"files", "jobs", "realtime"}
    assert choice.left_out == ("catalog", "imports", "orders", "payments")
    assert "imports is left out too: it requires catalog" in choice.notes
    assert "orders is left out too: it requires catalog" in choice.notes


def test_keeping_jobs_without_files_keeps_jobs_but_not_imports(source: Path) -> None:
    choice = choose(source, ["catalog", "jobs"], None)
    assert choice.packages == {"catalog", "jobs"}
    assert choice.notes == ("imports is left out too: it requires files",)


def test_every_feature_is_kept_by_default_and_none_by_with_none(source: Path) -> None:
    assert choose(source, None, None).left_out == ()
    assert choose(source, [], None) == Choice((), frozenset(), choose(source, [], None).left_out)
    assert len(choose(source, [], None).left_out) == 7


def test_the_prompt_asks_per_feature_when_a_person_is_there(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: dict[str, object] = {}
    monkeypatch.setattr(project_cli, "interactive", lambda: True)
    monkeypatch.setattr(
        "keel.scaffold.project.new_project", lambda directory, **options: asked.update(options)
    )
    answers = "y\nn\ny\nn\nn\n"  # catalog, orders, files, jobs, realtime
    result = runner.invoke(
        cli, ["new", "project", str(tmp_path / "x"), "--name", "a"], input=answers
    )
    assert result.exit_code == 0, result.output
    assert asked["with_"] == ["catalog", "files"]


def test_registry_lines_go_only_for_the_features_named() -> None:
    registry = 'ENABLED = (\n    "health",\n    "catalog",  # products\n    "files",\n)\n'
    assert (
        drop_registry_lines(registry, {"catalog"})
        == 'ENABLED = (\n    "health",\n    "files",\n)\n'
    )


@pytest.mark.parametrize(
    ("core", "owned"),
    [
        (("clients/typescript/src/smoke.ts", "clients/typescript/src/support.ts"), "smoke.ts"),
        (("bench/run.py", "bench/README.md"), "scenarios.py"),
    ],
    ids=["typescript smoke script", "benchmarks"],
)
def test_a_feature_s_files_leave_with_it_and_core_s_stay(core: tuple[str, ...], owned: str) -> None:
    """The TypeScript smoke script and the benchmarks, in `<folder>/features/<name>/`."""
    features = f"{core[0].rpartition('/')[0]}/features"
    tree = {
        **dict.fromkeys(core, b"core"),
        f"{features}/orders/{owned}": b"orders",
        f"{features}/ordersx/{owned}": b"another feature, its name longer",
    }
    assert set(remove_features(tree, {"orders", "payments"})) == {
        *core,
        f"{features}/ordersx/{owned}",
    }
    assert set(remove_features(tree, {"catalog"})) == set(tree)


# -- a generation -----------------------------------------------------------------------------


def test_a_project_without_catalog_loses_its_dependants_everywhere(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "acme"
    said = generate(source, target, without=["catalog"])
    files = set(
        subprocess.run(
            ["git", "-C", str(target), "ls-files"], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert "src/acme/features/files/feature.py" in files
    for gone in ("catalog", "orders", "payments", "imports"):
        assert not any(f"/{gone}" in path for path in files), gone
    assert "src/acme/scaffold/project.py" not in files  # Keel's own generator stays in Keel
    assert "tests/scaffold/test_new_project_x.py" not in files
    registry = (target / "src/acme/features/registry.py").read_text(encoding="utf-8")
    assert '"files",' in registry
    assert '"catalog",' not in registry
    assert '"imports",' not in registry
    readme = (target / "README.md").read_text(encoding="utf-8")
    assert "## Catalog" not in readme
    assert "Starting a new project" not in readme
    assert readme.startswith("# Acme\n")
    assert "## Errors" in readme
    assert "the intro that the generated head replaces" not in readme
    assert "orders is left out too: it requires catalog" in said


def test_the_generated_tree_is_renamed_but_the_auditor_is_not(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "acme"
    generate(source, target, name="acme_shop", env_prefix="SHOP_", with_=["realtime"])
    assert (target / "src/acme_shop/cli.py").read_text(encoding="utf-8") == (
        '"""The `acme_shop` command."""\n\nfrom acme_shop.core import config\n'
    )
    assert (target / ".env.example").read_text(encoding="utf-8").startswith("SHOP_ENVIRONMENT=")
    assert "SHOP_WS=1" in (target / ".env.example").read_text(encoding="utf-8")
    pyproject = (target / "pyproject.toml").read_text(encoding="utf-8")
    assert 'acme_shop = "acme_shop.cli:main"' in pyproject
    assert "[tool.keel-audit]" in pyproject
    assert (target / "packages/keel-audit/pyproject.toml").read_text(encoding="utf-8") == (
        '[project]\nname = "keel-audit"  # Keel\n'
    )
    assert (target / "docs/new-project.md").read_text(encoding="utf-8").endswith("from Keel\n")
    assert (target / "var.bin").read_bytes() == b"\x00\xffkeel\n# feature: catalog\n"
    assert (target / ".ci/run").stat().st_mode & 0o111


def test_the_project_records_what_it_came_from_and_is_one_commit(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / 'quoted "acme" dir'
    generate(source, target, with_=["files,jobs"])
    record = tomllib.loads((target / ".keel-project.toml").read_text(encoding="utf-8"))
    head = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert record["source"] == {
        "keel_version": keel.__version__,
        "commit": head,
        "uncommitted_changes": False,
    }
    assert record["options"]["features"] == ["files", "jobs"]
    assert record["options"]["env_prefix"] == "ACME_"
    assert "--with files,jobs" in record["generated"]["command"]
    log = subprocess.run(
        ["git", "-C", str(target), "log", "--format=%an <%ae>|%s"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(log) == 1
    assert log[0].startswith("keel new <noreply@example.invalid>|Generated by: keel new project")
    status = subprocess.run(
        ["git", "-C", str(target), "status", "--porcelain"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == ""


def test_a_dry_run_lists_the_files_and_writes_nothing(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "acme"
    said = generate(source, target, with_=["none"], dry_run=True)
    assert f"would write {target / 'src/acme/cli.py'}" in said
    assert not any("features/catalog" in line for line in said)
    assert not target.exists()


def test_a_later_keel_merges_into_a_changed_project_as_the_docs_say(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{variable}_NAME", "someone")
        monkeypatch.setenv(f"GIT_{variable}_EMAIL", "someone@example.invalid")
    project, later = tmp_path / "acme", tmp_path / "acme-next"
    generate(source, project, with_=["files"])
    git = ["git", "-C", str(project)]
    subprocess.run([*git, "branch", "keel", "HEAD"], check=True)
    readme = project / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nOur own notes.\n", encoding="utf-8")
    subprocess.run([*git, "commit", "-qam", "our change"], check=True)
    upstream = tmp_path / "keel-later"
    subprocess.run(["git", "clone", "-q", str(source), str(upstream)], check=True)
    cli_module = upstream / "src/keel/cli.py"
    cli_module.write_text(
        cli_module.read_text(encoding="utf-8") + "IMPROVED = True\n", encoding="utf-8"
    )
    subprocess.run(["git", "-C", str(upstream), "commit", "-qam", "an improvement"], check=True)
    generate(upstream, later, with_=["files"])

    script = documented_update_steps().replace("/tmp/acme-next", str(later))  # noqa: S108
    done = subprocess.run(["bash", "-euc", script], cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

    assert "IMPROVED = True" in (project / "src/acme/cli.py").read_text(encoding="utf-8")
    assert "Our own notes." in readme.read_text(encoding="utf-8")
    assert not (project / ".git" / "keel-index").exists()
    status = subprocess.run(
        [*git, "status", "--porcelain"], capture_output=True, text=True, check=True
    )
    assert status.stdout == ""


def documented_update_steps() -> str:
    """The commands docs/new-project.md gives for an update, from the scratch index to the merge."""
    text = (Path(__file__).parents[2] / "docs" / "new-project.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("export GIT_INDEX_FILE"))
    last = next(i for i, line in enumerate(lines) if line.startswith("git merge keel"))
    return "\n".join(line.split("  #")[0] for line in lines[first : last + 1])


def renamed(files: dict[str, str], names: Names) -> dict[str, bytes]:
    return {
        rename_path(path, names): rename_file(path, text, names).encode()
        for path, text in files.items()
    }


@pytest.mark.parametrize(
    ("pyproject", "expected"),
    [
        pytest.param(
            "[tool.ruff]\nline-length = 20\n\n[tool.ruff.lint.per-file-ignores]\n"
            '"dev.py" = ["S603"]\n',
            '"dev.py" = ["E501", "S603"]',
            id="a file with ignores gets E501 added to them",
        ),
        pytest.param(
            "[tool.ruff]\nline-length = 20\n",
            "[tool.ruff.lint.per-file-ignores]\n# `keel new project`",
            id="the table is added when the source has none",
        ),
    ],
)
def test_lines_the_rename_made_too_long_are_allowed_file_by_file(
    pyproject: str, expected: str
) -> None:
    long_name = Names("northwind_trading", "NW_")
    before = {
        "pyproject.toml": pyproject,
        "dev.py": "import keel\n",  # 11 → 24: grown, and has ignores already
        "src/keel/long.py": "import keel.cli  # keel\n",  # 23: too long already, not by the rename
        "src/keel/grown.py": "import keel.cli\n",  # 15 → 28: grown past the limit
        "src/keel/short.py": "x = 1\n",
    }
    after = renamed(before, long_name)
    allow_grown_lines({path: text.encode() for path, text in before.items()}, long_name, after)
    text = after["pyproject.toml"].decode()
    assert expected in text
    assert '"src/northwind_trading/grown.py" = ["E501"]' in text
    assert "short.py" not in text
    assert "long.py" not in text
    assert tomllib.loads(text)["tool"]["ruff"]["lint"]["per-file-ignores"]


def test_a_dropped_block_leaves_one_blank_line_not_two() -> None:
    text = "a\n\n<!-- feature: files -->\nfiles\n<!-- /feature: files -->\n\nb\n"
    assert drop_marked_blocks(text, {"files"}) == "a\n\nb\n"
    assert drop_marked_blocks(text, set()) == text


def test_nested_blocks_go_with_the_outer_one_and_stay_with_it() -> None:
    inner = "# feature: imports\nimports\n# /feature: imports\n"
    text = f"# feature: jobs\njobs\n{inner}# /feature: jobs\n"
    assert drop_marked_blocks(text, {"jobs"}) == ""
    assert drop_marked_blocks(text, {"imports"}) == "# feature: jobs\njobs\n# /feature: jobs\n"
