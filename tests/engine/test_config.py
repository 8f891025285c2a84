"""RunConfig is the schema: ranges checked before anything is written, a log's run kept whole."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from scaleenv._cli import main
from scaleenv._config import LEGACY, ConfigError, RunConfig, fields, from_stored, make, reconcile, with_preset
from scaleenv._store.log import Log


@pytest.mark.parametrize("field", [f for f in fields() if f.type in (int, float)], ids=lambda f: f.name)
def test_every_field_refuses_values_out_of_its_range(field) -> None:  # type: ignore[no-untyped-def]
    assert field.ge is not None and field.le is not None and field.description
    for bad in (field.ge - 1, field.le + 1):
        with pytest.raises(ConfigError, match=field.flag):
            make({field.name: field.type(bad)})
    pairs = {"chain_": ("chain_min", "chain_max"), "min_tools": ("min_tools", "max_tools"), "max_tools": ("min_tools", "max_tools"),
             "min_goals": ("min_goals", "max_goals"), "max_goals": ("min_goals", "max_goals")}
    pair = next((v for k, v in pairs.items() if field.name.startswith(k)), ())
    for bound in (field.ge, field.le):  # the bounds themselves are valid
        make({**{p: field.type(bound) for p in pair}, field.name: field.type(bound)})


def test_a_preset_fills_what_is_not_given() -> None:
    paper = make(with_preset({"preset": "paper"}))
    assert (paper.domains, paper.min_tools, paper.max_tools, sum(paper.task_counts)) == (16, 25, 70, 2560)
    assert [paper.tasks_for(s) for s in (0, 2, 15)] == [512, 256, 64]
    quick = make(with_preset({"preset": "paper", "domains": 2, "tasks_per_domain": 3}))
    assert (quick.domains, quick.task_counts, quick.tasks_for(1)) == (2, [], 3)
    with pytest.raises(ConfigError, match="--preset must be one of"):
        with_preset({"preset": "huge"})


def test_cross_field_rule_names_both_flags() -> None:
    with pytest.raises(ConfigError, match="--chain-min 5 is above --chain-max 3"):
        make({"chain_min": 5, "chain_max": 3})


def test_reconcile_keeps_what_is_not_given_grows_counts_and_refuses_the_rest() -> None:
    stored = msgspec.to_builtins(RunConfig(seed=3, domains=2, max_turns=9))
    assert reconcile(stored, {}) == make(stored)
    grown = reconcile(stored, {"domains": 5, "episodes_per_task": 8})
    assert (grown.domains, grown.episodes_per_task, grown.max_turns, grown.seed) == (5, 8, 9, 3)
    with pytest.raises(ConfigError, match="--domains 1 is below the 2"):
        reconcile(stored, {"domains": 1})
    with pytest.raises(ConfigError, match=r"--max-turns 1 differs from this log's run \(9"):
        reconcile(stored, {"max_turns": 1})
    with pytest.raises(ConfigError, match="--seed 4 differs"):
        reconcile(stored, {"seed": 4})
    assert reconcile(None, {"domains": 3}) == RunConfig(domains=3)


def test_a_stored_config_older_than_a_field_keeps_the_behaviour_it_was_made_with() -> None:
    new = msgspec.to_builtins(RunConfig(seed=3))
    assert new["gate_feasibility"] == "oracle"  # the default for new runs
    old = {k: v for k, v in new.items() if k not in LEGACY}
    assert from_stored(old).gate_feasibility == "realize"
    assert reconcile(old, {}).gate_feasibility == "realize"
    assert reconcile(old, {"domains": 9}).gate_feasibility == "realize"
    assert from_stored(new).gate_feasibility == "oracle"  # a stored value always wins
    with pytest.raises(ConfigError, match="--gate-feasibility 'oracle' differs"):
        reconcile(old, {"gate_feasibility": "oracle"})


def _cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


def test_a_bad_value_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log"
    assert _cli("run", "--log", log, "--domains", "0", "--quiet") == 2
    assert not log.exists()
    assert "--domains must be int in 1..1000000, got 0" in capsys.readouterr().err


def test_a_run_that_grows_still_reruns_and_a_changed_rule_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log"
    small = ("--tasks-per-domain", "2", "--episodes-per-task", "1", "--quiet", "--no-sync")
    assert _cli("run", "--log", log, "--domains", "1", *small) == 0
    assert _cli("run", "--log", log, "--domains", "2", *small) == 0  # the README's "bigger run"
    with Log.open(log, readonly=True) as lg:
        assert lg.meta_get("run_config")["domains"] == 2
    capsys.readouterr()
    assert _cli("rerun", "--log", log, "--quiet", "--json") == 0
    assert json.loads(capsys.readouterr().out)["divergences"] == 0
    assert _cli("rollout", "--log", log, "--max-turns", "1", "--episodes-per-task", "5", "--quiet") == 2
    err = capsys.readouterr().err
    assert "--max-turns 1 differs" in err and len(err.strip().splitlines()) == 1
    with Log.open(log, readonly=True) as lg:
        assert lg.meta_get("run_config")["episodes_per_task"] == 1  # nothing was adopted from the refused command
