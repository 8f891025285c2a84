"""The trainer adapters play served episodes on a private copy of the serve tests' rolled-out run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scaleenv._replay.projection import TaskView, fold
from scaleenv._store.log import Log

from tests.serve.conftest import OPTIONS, base_run, run_log  # noqa: F401  (fixtures)

__all__ = ["OPTIONS", "golden", "kept", "served"]


def kept(path: Path) -> dict[str, TaskView]:
    with Log.open(str(path), readonly=True) as event_log:
        view = fold(event_log.read())
    return {t: v for t, v in sorted(view.tasks.items()) if v.status == "kept"}


def golden(task: TaskView) -> tuple[list[dict[str, Any]], str]:
    """The golden chain as OpenAI tool calls, and the closing message that gives the required answers."""
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": s.tool, "arguments": json.dumps(s.args)}}
             for i, s in enumerate(task.golden.steps)]
    answers = " ".join(str(a) for a in task.golden.expected_answers)
    return calls, f"All done: it has been completed. {answers}"


def served(path: Path) -> dict[str, Any]:
    """The served episodes of the log, folded."""
    with Log.open(str(path), readonly=True) as event_log:
        view = fold(event_log.read())
    return {e: v for e, v in view.episodes.items() if e.rsplit("/", 1)[-1].startswith("s")}
