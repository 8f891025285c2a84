"""The pages ship in the package: every asset is package data and every import resolves."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "engine" / "_ui" / "static"


def test_every_asset_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["scaleenv._ui"]
    files = [p.relative_to(STATIC.parent).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files), files
    assert not [p for p in STATIC.rglob("*") if p.is_dir()], "package-data globs one folder level"


def test_every_module_import_and_asset_link_resolves() -> None:
    names = {p.name for p in STATIC.iterdir()}
    for js in STATIC.glob("*.js"):
        for target in re.findall(r'from "\./([^"]+)"', js.read_text()):
            assert target in names, f"{js.name} imports ./{target}"
    html = (STATIC / "index.html").read_text()
    for target in re.findall(r'(?:src|href)="/static/([^"]+)"', html):
        assert target in names, f"index.html links /static/{target}"
    assert "http://" not in html and "https://" not in html  # nothing from outside (no CDN)


def test_no_page_script_writes_markup() -> None:
    """Pages build DOM nodes from data; model text must never be parsed as HTML."""
    for js in STATIC.glob("*.js"):
        text = js.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{js.name} uses {sink}"
