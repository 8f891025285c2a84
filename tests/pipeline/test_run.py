"""The whole pipeline: summary, determinism across concurrency, resume after interruption, rerun."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import trio

from scaleenv._agents.synth import prompts
from scaleenv._replay.projection import fold
from scaleenv._runner import EngineOptions, open_run, open_verify, rollouts, stage1, stage2
from scaleenv._store.log import Log

from .conftest import SMALL, run_pipeline


def test_summary_reports_every_stage(small_run: tuple[Path, dict[str, Any]]) -> None:
    _, result = small_run
    assert len(result["domains"]) == SMALL.domains
    for d in result["domains"]:
        assert d["name"] and d["tools_verified"] > 0
        assert d["tasks"] > 0 and d["episodes"] == d["tasks"] * SMALL.episodes_per_task
        assert 0.0 <= d["pass_at_1"] <= 1.0
        assert d["pass_at_2"] >= d["pass_at_1"]
    assert len(result["digest"]) == 64


def test_same_seed_same_digest_at_any_concurrency(tmp_path: Path, small_run: tuple[Path, dict[str, Any]]) -> None:
    _, first = small_run
    serial = run_pipeline(tmp_path / "serial", concurrency=1, llm_concurrency=1, sandbox_workers=1)
    assert serial["digest"] == first["digest"]
    with Log.open(small_run[0], readonly=True) as a, Log.open(tmp_path / "serial", readonly=True) as b:
        assert fold(a.read()).stream_digests() == fold(b.read()).stream_digests()


def test_resume_after_interruption_gives_the_same_digest(tmp_path: Path, small_run: tuple[Path, dict[str, Any]]) -> None:
    _, uninterrupted = small_run
    path = tmp_path / "interrupted"
    opts = EngineOptions(progress=False, sync=False)

    async def interrupted_run(stop_after: int) -> None:
        async with open_run(str(path), SMALL, opts) as ctx:
            with trio.CancelScope() as scope:
                async def watch() -> None:
                    while ctx.log.last_seq() < stop_after:
                        await trio.sleep(0.001)
                    scope.cancel()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch)
                    for stage in (stage1, stage2, rollouts):
                        await stage(ctx)
                    nursery.cancel_scope.cancel()

    for stop in (40, 400, 900):  # interrupted in stage 1, then later, then later again
        trio.run(interrupted_run, stop)
    resumed = run_pipeline(path)
    assert resumed["digest"] == uninterrupted["digest"]


def _rerun(path: Path) -> tuple[int, list[Any], int]:
    async def main() -> tuple[int, list[Any], int]:
        async with open_verify(str(path), EngineOptions(progress=False, llm=f"recorded:{path}")) as ctx:
            for stage in (stage1, stage2, rollouts):
                await stage(ctx)
            return sum(s.next_n for s in ctx.streams_run), ctx.divergences, len(ctx.streams_run)

    return trio.run(main)


def test_rerun_against_recorded_outputs_matches_every_event(small_run: tuple[Path, dict[str, Any]]) -> None:
    path, _ = small_run
    checked, divergences, streams = _rerun(path)
    with Log.open(path, readonly=True) as log:
        assert checked == log.count()
        assert streams == sum(1 for _ in log.streams())
    assert divergences == []


def test_rerun_reports_the_first_divergence_per_stream(small_run: tuple[Path, dict[str, Any]], monkeypatch: Any) -> None:
    path, _ = small_run
    monkeypatch.setattr(prompts, "REVIEWER", prompts.REVIEWER + " Be strict.")
    _, divergences, _ = _rerun(path)
    assert divergences, "a changed reviewer prompt must diverge"
    first = divergences[0]
    assert first.stream.startswith("tool/")
    assert "messages" in str(first)  # names the differing field, both sides


def test_cli_run_json_prints_one_object(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "scaleenv", "run", "--log", str(tmp_path / "cli"), "--domains", "1",
           "--tasks-per-domain", "2", "--episodes-per-task", "1", "--seed", "3", "--json", "--quiet", "--no-sync"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"domains", "digest"}
    assert {"name", "tools_verified", "tools_rejected", "tasks", "episodes", "pass_at_1"} <= set(data["domains"][0])
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert json.loads(again.stdout)["digest"] == data["digest"]  # resuming a finished run changes nothing


def test_cli_rejects_another_seed_on_the_same_log(small_run: tuple[Path, dict[str, Any]]) -> None:
    path, _ = small_run
    out = subprocess.run([sys.executable, "-m", "scaleenv", "synth", "--log", str(path), "--seed", "8", "--quiet"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "--seed 8 differs from this log's run (5" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_config_is_recorded(small_run: tuple[Path, dict[str, Any]]) -> None:
    path, _ = small_run
    with Log.open(path, readonly=True) as log:
        assert msgspec.convert(log.meta_get("run_config"), type(SMALL)) == SMALL
