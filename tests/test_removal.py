"""`remove_features` on a small Keel-shaped tree: what goes, what stays, what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.features.removal import remove_features

REGISTRY = """ENABLED: tuple[str, ...] = (
    "health",
    "auth",
    "users",
    "shelf",
    "basket",
    "notes",
)
"""


def tree(root: Path) -> Path:
    features = root / "src" / "keel" / "features"
    for name, requires in [
        ("health", ()),
        ("auth", ()),
        ("users", ()),
        ("shelf", ()),
        ("basket", ("shelf",)),
        ("notes", ()),
    ]:
        (features / name).mkdir(parents=True)
        (features / name / "feature.py").write_text(
            f"FEATURE = Feature(name={name!r}, requires={requires!r})\n"
        )
        (root / "tests" / "features" / name).mkdir(parents=True)
    (features / "registry.py").write_text(REGISTRY)
    (root / "docs" / "features").mkdir(parents=True)
    (root / "docs" / "features" / "shelf.md").write_text("# Shelf\n")
    (root / "README.md").write_text(
        "# App\n<!-- feature: shelf -->\nShelves.\n<!-- /feature: shelf -->\n"
        "<!-- feature: notes -->\nNotes.\n<!-- /feature: notes -->\nEnd.\n"
    )
    (root / ".env.example").write_text("A=1\n# feature: basket\nB=2\n# /feature: basket\nC=3\n")
    return features


def test_a_feature_goes_with_everything_that_requires_it(tmp_path: Path) -> None:
    features = tree(tmp_path)
    assert remove_features(tmp_path, {"shelf"}) == ["shelf", "basket"]
    assert sorted(p.name for p in features.iterdir() if p.is_dir()) == [
        "auth",
        "health",
        "notes",
        "users",
    ]
    assert '"shelf"' not in (features / "registry.py").read_text()
    assert '    "notes",\n)' in (features / "registry.py").read_text()
    assert not (tmp_path / "tests" / "features" / "basket").exists()
    assert not (tmp_path / "docs" / "features" / "shelf.md").exists()
    assert (tmp_path / "README.md").read_text() == (
        "# App\n<!-- feature: notes -->\nNotes.\n<!-- /feature: notes -->\nEnd.\n"
    )
    assert (tmp_path / ".env.example").read_text() == "A=1\nC=3\n"


def test_a_feature_nothing_requires_goes_alone(tmp_path: Path) -> None:
    features = tree(tmp_path)
    assert remove_features(tmp_path, {"basket"}) == ["basket"]
    assert (features / "shelf").is_dir()


@pytest.mark.parametrize("name", ["users", "auth", "health", "warehouse"])
def test_fixed_core_and_unknown_names_are_refused_and_nothing_changes(
    tmp_path: Path, name: str
) -> None:
    features = tree(tmp_path)
    before = (features / "registry.py").read_text()
    with pytest.raises(ValueError, match=name):
        remove_features(tmp_path, {name})
    assert (features / "registry.py").read_text() == before
    assert (features / "shelf").is_dir()
