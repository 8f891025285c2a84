"""The package layout: folders mapped onto the one import package, every subpackage listed."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROOTS = {"scaleenv": "engine", "scaleenv._agents": "agents", "scaleenv._store": "store", "scaleenv._replay": "replay"}
# verifiers 0.4 imports a plugin by a top-level module name (its loader's find_spec of
# "verifiers.v1.tasksets.<id>" fails on a dotted id): the one name beside scaleenv, a shim.
PLUGIN_SHIMS = {"scaleenv_verifiers": "plugins/scaleenv_verifiers"}


def test_every_subpackage_is_listed_for_non_editable_installs() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == ROOTS | PLUGIN_SHIMS
    found = set()
    for name, folder in ROOTS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    found |= set(PLUGIN_SHIMS)
    assert found == set(config["packages"]), sorted(found ^ set(config["packages"]))


def test_no_top_level_names_besides_scaleenv() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {p.split(".")[0] for p in config["packages"]} == {"scaleenv", *PLUGIN_SHIMS}
    for shim in PLUGIN_SHIMS.values():  # a shim only re-exports scaleenv.integrations
        code = (ROOT / shim / "__init__.py").read_text()
        assert [line for line in code.splitlines() if line.startswith(("import ", "from "))] == [
            "from scaleenv.integrations.verifiers_v1 import ScaleEnvEnv, ScaleEnvTaskset, load_environment"]
