"""Trajectories for RL trainers: one row per finished episode, in OpenAI chat format.

Each row carries the task id, domain, the tool schemas offered (OpenAI function format),
the full message list (system, user, assistant with tool_calls, tool results), the
reward and its breakdown, why the episode ended and whose fault it was, the seeds, and
the token ids / logprobs per assistant turn whenever the backend returned them
(re-tokenizing chat text is a known source of RL training bugs).

Both formats load with Hugging Face ``datasets`` (``load_dataset("json" | "parquet")``),
``messages`` as a list of OpenAI chat messages a chat template renders as they are. In
parquet every column is native except ``tools`` (JSON text: see :data:`JSON_TEXT_COLUMNS`);
columnar messages carry every key any message has (null where absent).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from scaleenv.model.tool_schemas import openai_tools
from scaleenv.store.events.episodes import MessageSent

from scaleenv.store.log import Log

from .projection import RunView, fold


def episode_rows(view: RunView, run_seed: int) -> Iterator[dict[str, Any]]:
    """One row per finished episode, ``messages`` exactly as the policy was sent them.

    ``messages`` is :meth:`EpisodeView.trajectory`: the episode's fold
    (:mod:`scaleenv.replay.episode`) through the policy's last answer, i.e. the last
    request the policy was sent plus that answer, with tool results worded as the
    policy read them. A turn the port had to retry is exported as it was accepted; the
    rejected attempts stay in the log (``llm.called``), not in the trajectory.
    """
    for eid in sorted(view.episodes):
        ep = view.episodes[eid]
        reward = ep.reward
        if reward is None or ep.ended is None:
            continue
        task = view.tasks.get(ep.task_id)
        domain = view.domains.get(ep.task_id.split("/", 1)[0])
        if task is None or domain is None or domain.spec is None:
            continue
        verified = [t for t in domain.spec.tools if t.name in set(domain.verified)]
        assistant = [e for e in ep.timeline if isinstance(e, MessageSent) and e.role == "assistant"]
        token_ids = [e.token_ids for e in assistant]
        logprobs = [e.logprobs for e in assistant]
        messages = ep.trajectory()
        yield {
            "episode_id": eid,
            "task_id": ep.task_id,
            "domain": ep.domain,
            "attempt": ep.attempt,
            "instruction": task.instruction,
            "tools": openai_tools(verified),
            "messages": messages,
            "reward": reward.reward,
            "reward_breakdown": reward.breakdown,
            "reward_version": reward.reward_version,
            "reward_diff": reward.diff,
            "end_reason": ep.ended.reason,
            "fault": ep.ended.fault,
            "turns": ep.ended.turns,
            "tool_calls": ep.ended.tool_calls,
            "seeds": {"run": run_seed, "episode": ep.seed},
            "assistant_token_ids": token_ids if any(t is not None for t in token_ids) else None,
            "assistant_logprobs": logprobs if any(lp is not None for lp in logprobs) else None,
        }


JSON_TEXT_COLUMNS = ("tools",)
"""Columns written as JSON text in parquet: each tool's parameter schema has its own
properties, and a columnar struct would hold the union of every tool's properties (nulls
for the others), which is no longer a valid schema. Every other column is written
natively (``messages`` as a list of structs: absent keys read back as null, as in any
chat dataset)."""


def parquet_table(rows: list[dict[str, Any]]) -> Any:
    """The rows as a pyarrow Table for parquet (needs pyarrow: ``pip install 'scaleenv[export]'``)."""
    import pyarrow as pa

    flat = [{k: (json.dumps(v, sort_keys=True, default=str) if k in JSON_TEXT_COLUMNS else v) for k, v in r.items()}
            for r in rows]
    return pa.Table.from_pylist(flat)


def write_parquet(rows: list[dict[str, Any]], out: Any) -> None:
    """Write the rows to a parquet file (nested columns native, see :data:`JSON_TEXT_COLUMNS`)."""
    import pyarrow.parquet as pq

    pq.write_table(parquet_table(rows), out)


def write_jsonl(rows: Iterable[dict[str, Any]], out: Any) -> int:
    """Write the rows as JSON lines to the path ``out``; returns how many were written."""
    n = 0
    with open(out, "w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True, default=str) + "\n")
            n += 1
    return n


def export_log(log_path: Any, out: Any, fmt: str = "jsonl") -> int:
    """Export every finished episode of the log at ``log_path`` to ``out`` (``jsonl`` or
    ``parquet``); returns the number of episodes written. Reads the log only."""
    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"format must be jsonl or parquet, not {fmt!r}")
    with Log.open(log_path, readonly=True) as log:
        view = fold(log.read())
        seed = int((log.meta_get("run_config") or {}).get("seed", 0))
    rows = list(episode_rows(view, seed))
    if fmt == "parquet":
        write_parquet(rows, out)
        return len(rows)
    return write_jsonl(rows, out)
