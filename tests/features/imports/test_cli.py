"""`keel import-products FILE`: the command the imports feature adds to `keel`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import cli
from tests.support.databases import fresh_database_url

runner = CliRunner()


def _migrated_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", fresh_database_url("import", tmp_path))
    assert runner.invoke(cli, ["migrate", "upgrade"]).exit_code == 0


def test_import_products_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _migrated_url(tmp_path, monkeypatch)
    monkeypatch.setenv("KEEL_IMPORT_BATCH_SIZE", "2")
    csv = tmp_path / "products.csv"
    csv.write_text(
        "sku,name,description,price,currency,stock,is_active\n"
        "A-1,One,,100,EUR,1,true\nA-2,Two,,200,EUR,2,true\nA-3,Bad,,-5,EUR,1,true\n",
        encoding="utf-8",
    )
    result = runner.invoke(cli, ["import-products", str(csv)])
    assert result.exit_code == 0, result.output
    assert "created 2, updated 0" in result.output
    assert "failed 1" in result.output
    assert "row 4, price" in result.output

    again = runner.invoke(cli, ["import-products", str(csv)])
    assert "created 0, updated 2" in again.output


def test_import_products_refuses_a_malformed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _migrated_url(tmp_path, monkeypatch)
    csv = tmp_path / "products.csv"
    csv.write_text("sku,name\nA-1,One\n", encoding="utf-8")
    result = runner.invoke(cli, ["import-products", str(csv)])
    assert result.exit_code == 1
    assert "missing the columns" in result.output
    assert "nothing was imported" in result.output


def test_import_products_needs_an_existing_file(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["import-products", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
