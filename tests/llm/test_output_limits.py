"""Each role's max_tokens fits its answers with room for larger domains than the test's."""

from __future__ import annotations

from pathlib import Path

from scaleenv._agents.llm.port import output_tokens
from scaleenv._store.events.llm import LlmCalled
from scaleenv._store.log import Log


def test_every_answer_of_a_real_run_is_under_half_its_role_s_limit(template: Path) -> None:
    """The sim ignores max_tokens (a real model would be cut off), so the run shows what
    each role needs; the limit keeps a factor of two over the longest answer seen in the
    suite's template run (domains smaller than the paper's largest)."""
    longest: dict[str, int] = {}
    with Log.open(template, readonly=True) as log:
        for r in log.read():
            if isinstance(r.event, LlmCalled) and r.event.error is None:
                longest[r.event.role] = max(longest.get(r.event.role, 0), r.event.completion_tokens)
    assert {"architect", "database", "coder", "tester", "chain_writer", "task_writer"} <= set(longest)
    over = {role: (n, output_tokens(role)) for role, n in longest.items() if 2 * n > output_tokens(role)}
    assert not over, f"answers longer than half their role's max_tokens: {over}"
