"""The package's layers hold: imports go one way (``.importlinter``), and no module hides
an import inside a function to dodge a cycle."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAZY_OK = {
    # The CLI loads each subcommand's machinery when that subcommand runs, so that
    # `scaleenv --help` and a mistyped option answer without importing the engine.
    "scaleenv._cli",
}
"""Packages whose functions may import other scaleenv modules (for start-up time, not cycles)."""


def _package_dirs() -> dict[str, Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {name: ROOT / path for name, path in config["tool"]["setuptools"]["package-dir"].items()
            if name == "scaleenv" or name.startswith("scaleenv.")}  # not the top-level plugin shims (scaleenv_verifiers)


def _modules() -> dict[str, Path]:
    """Every module of the package, by import name (following package-dir)."""
    dirs = _package_dirs()
    out: dict[str, Path] = {}
    for name, folder in dirs.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("").parts
            if any(part in ("__pycache__",) for part in rel):
                continue
            parts = [name, *rel]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            module = ".".join(parts)
            # a folder mapped to its own package name belongs to that package, not its parent's
            if any(module == other or module.startswith(other + ".") for other in dirs if other != name and other.startswith(name + ".")):
                continue
            out[module] = path
    return out


def test_imports_go_one_way(tmp_path: Path) -> None:
    pytest.importorskip("importlinter", reason="pip install -e '.[test]' installs import-linter")
    tree = tmp_path / "site"
    for module, path in _modules().items():
        target = tree.joinpath(*module.split("."))
        target = target / "__init__.py" if path.name == "__init__.py" else target.with_suffix(".py")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run(
        [str(lint), str(ROOT / ".importlinter"), "--no-cache"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    analysed = re.search(r"Analyzed (\d+) files", out.stdout)
    assert analysed and int(analysed[1]) == len(_modules()), out.stdout  # every module was really analysed


def _function_level_imports(path: Path, module: str) -> list[str]:
    found = []
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if in_function and isinstance(child, ast.Import | ast.ImportFrom):
                if isinstance(child, ast.ImportFrom):
                    if child.level:
                        base = package.split(".")[: len(package.split(".")) - child.level + 1]
                        names = [".".join(base + ([child.module] if child.module else []))]
                    else:
                        names = [child.module or ""]
                else:
                    names = [a.name for a in child.names]
                found.extend(f"{module}:{child.lineno} imports {n}" for n in names if n.startswith("scaleenv"))
            visit(child, inside)

    visit(tree, False)
    return found


def test_no_function_level_imports_of_the_package() -> None:
    found = []
    for module, path in sorted(_modules().items()):
        if any(module == ok or module.startswith(ok + ".") for ok in LAZY_OK):
            continue
        found.extend(_function_level_imports(path, module))
    assert not found, "imports inside functions (move them to the top; a cycle means a layer is wrong):\n" + "\n".join(found)
