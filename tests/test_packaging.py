"""The package layout: folders mapped onto the one import package, every subpackage listed."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROOTS = {"scaleenv": "engine", "scaleenv.agents": "agents", "scaleenv.store": "store", "scaleenv.replay": "replay"}


def test_every_subpackage_is_listed_for_non_editable_installs() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == ROOTS
    found = set()
    for name, folder in ROOTS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert found == set(config["packages"]), sorted(found ^ set(config["packages"]))


def test_no_top_level_names_besides_scaleenv() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {p.split(".")[0] for p in config["packages"]} == {"scaleenv"}
