"""The public API: a small documented surface under ``import scaleenv``."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import scaleenv


def test_every_public_name_resolves_and_says_what_it_does() -> None:
    assert scaleenv.__all__ == sorted(scaleenv.__all__)
    for name in scaleenv.__all__:
        value = getattr(scaleenv, name)
        if callable(value):
            assert inspect.getdoc(value), f"scaleenv.{name} has no docstring"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        scaleenv.nope  # noqa: B018


def test_importing_the_package_does_not_load_the_engine() -> None:
    code = "import sys, scaleenv, scaleenv._sandbox; print(sorted(m for m in sys.modules if m.startswith('scaleenv')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.replace("'", '"'))
    assert "scaleenv._runner" not in loaded and "scaleenv._agents.llm.port" not in loaded, loaded


def test_run_read_and_export_through_the_public_api(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    log = str(tmp_path / "run.lmdb")
    config = scaleenv.RunConfig(seed=2, domains=1, tasks_per_domain=2, episodes_per_task=1)
    result = scaleenv.run(log, config, scaleenv.EngineOptions(progress=False, sync=False))
    assert result["domains"][0]["episodes"] >= 1
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)  # a library prints nothing unless the application asks
    again = scaleenv.run(log, {}, scaleenv.EngineOptions(progress=False, sync=False))  # resumes: nothing left to do
    assert again["digest"] == result["digest"]
    with scaleenv.Log.open(log, readonly=True) as lg:
        view = scaleenv.fold(lg.read())
        eid, ep = next(iter(view.episodes.items()))
        task = view.tasks[ep.task_id]
        alone = scaleenv.fold_episode((r.event for r in lg.read_stream(f"episode/{eid}")), task.initial_state, eid)
    assert alone.messages == ep.messages
    out = tmp_path / "episodes.jsonl"
    assert scaleenv.export_log(log, out) == len(out.read_text().splitlines()) >= 1
    with pytest.raises(ValueError, match="unknown stage"):
        scaleenv.run(log, {}, stages=("synthesize",))


PUBLIC_SUBMODULES = {"integrations"}  # trainer adapters: entry points by module name (gym ids, plugins)


def test_everything_but_the_public_api_is_private_by_name() -> None:
    """Every module under ``scaleenv`` is ``scaleenv._x`` except the adapters and ``__main__``."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    names = {p.split(".")[1] for p in setuptools["packages"] + list(setuptools["package-dir"]) if "." in p}
    names |= {p.stem for p in (root / "engine").glob("*.py")}
    names |= {p.name for p in (root / "engine").iterdir() if (p / "__init__.py").exists()}
    public = sorted(n for n in names if not n.startswith("_") and n not in PUBLIC_SUBMODULES)
    assert public == [], f"modules public by name but not in the documented API: {public}"
    assert {"_agents", "_store", "_replay", "_runner", "_cli"} <= names  # the walk above saw the tree
