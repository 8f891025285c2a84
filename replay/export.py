"""Trajectories for RL trainers: one row per finished episode, in OpenAI chat format.

Each row carries the task id, domain, which kind of episode it is, the tool schemas
offered (OpenAI function format: read from the policy's recorded calls, log format 3;
derived from the task for older logs and served episodes), the message list (system, user, assistant with
tool_calls, tool results), the reward and its breakdown, why the episode ended and whose
fault it was, the seeds, and the token ids / logprobs per assistant turn whenever the
backend or the client gave them (re-tokenizing chat text is a known source of RL
training bugs).

Kinds (:data:`KINDS`): ``local`` (rolled out by the engine, ``.../g<k>``), ``served``
(played by an outside policy through ``scaleenv serve``, MCP or gymnasium,
``.../s<k>``), ``checker`` (served episodes labelled ``checker``: the ones gymnasium's
env checker opens). :func:`export_log` writes :data:`DEFAULT_KINDS` unless told.

Parquet has a typed schema (:data:`PARQUET_SCHEMA`): ``messages`` a list of message
structs, ``tools`` a list of ``{type, function: {name, description, parameters}}``
structs. A tool's ``parameters`` is a JSON Schema, whose shape differs from tool to tool
(a struct would hold the union of every tool's properties, nulls for the others, which
a chat template would print): it is Arrow's JSON type (parquet's JSON logical type),
which Hugging Face ``datasets`` loads as the object itself, as it does
``reward_breakdown``. So ``tokenizer.apply_chat_template(row["messages"],
tools=row["tools"])`` renders a loaded row with no post-processing, exactly as it
renders the episode's own messages (columnar messages carry every message field, null
where a message has none). JSON lines keep each row as the plain JSON object.

Streaming (:func:`log_rows`, :func:`export_to`): the run's domains and tasks come from
the projection (the newest checkpoint and what follows it; episodes are not decoded),
then each finished episode is folded from its own stream (the per-stream index), turned
into its row and written before the next is read: JSON lines row by row, parquet in row
groups of :data:`PARQUET_BATCH` rows. Peak memory is one episode (or one row group),
whatever the number of episodes. The rows are the ones :func:`episode_rows` gives for
the whole fold, in the same order (by episode id); JSON lines are byte for byte the
same, and a parquet file of at most :data:`PARQUET_BATCH` rows too (a bigger one holds
the same table in more row groups).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from scaleenv._model.tool_schemas import environment_tools, openai_tools
from scaleenv._outfile import replaced_when_done
from scaleenv._replay.episode import EpisodeView
from scaleenv._replay.episode import fold as fold_episode
from scaleenv._store.events.episodes import MessageSent
from scaleenv._store.log import Log
from scaleenv._streams import is_served

from .checkpoint import project
from .projection import DomainView, RunView, TaskView
from .stored import episode_finished

KINDS = ("local", "served", "checker")
DEFAULT_KINDS = ("local", "served")
"""What :func:`export_log` writes unless told: every episode but the env checker's."""
CHECKER_LABEL = "checker"

MESSAGE_FIELDS = ("role", "content", "tool_calls", "tool_call_id")
"""Every field a message of the episode fold has (parquet: one struct field each)."""


def episode_kind(episode: EpisodeView) -> str:
    """``local``, ``served`` or ``checker`` (see the module doc)."""
    if not is_served(episode.episode_id):
        return "local"
    return "checker" if episode.label == CHECKER_LABEL else "served"


def check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    """The kinds, checked (ValueError naming the unknown one and the known ones)."""
    out = tuple(kinds)
    for kind in out:
        if kind not in KINDS:
            raise ValueError(f"unknown episode kind {kind!r}: the kinds are {', '.join(KINDS)}")
    if not out:
        raise ValueError(f"no episode kind given: the kinds are {', '.join(KINDS)}")
    return out


def episode_rows(view: RunView, run_seed: int, kinds: Iterable[str] = KINDS) -> Iterator[dict[str, Any]]:
    """One row per finished episode of the given kinds, ``messages`` exactly as the policy was sent them.

    ``messages`` is :meth:`EpisodeView.trajectory`: the episode's fold
    (:mod:`scaleenv._replay.episode`) through the policy's last answer, i.e. the last
    request the policy was sent plus that answer, with tool results worded as the
    policy read them. A turn the port had to retry is exported as it was accepted; the
    rejected attempts stay in the log (``llm.called``), not in the trajectory.
    ``view`` holds whole episodes (:func:`scaleenv._replay.projection.fold`); :func:`log_rows`
    gives the same rows from a log, one episode in memory at a time.
    """
    wanted = frozenset(check_kinds(kinds))
    for eid in sorted(view.episodes):
        ep = view.episodes[eid]
        if ep.reward is None or ep.ended is None or episode_kind(ep) not in wanted:  # type: ignore[arg-type]
            continue
        row = episode_row(ep, view.tasks, view.domains, run_seed)  # type: ignore[arg-type]
        if row is not None:
            yield row


def episode_row(ep: EpisodeView, tasks: Mapping[str, TaskView], domains: Mapping[str, DomainView],
                run_seed: int) -> dict[str, Any] | None:
    """The row of one finished episode (None when its task or domain is not in the run)."""
    reward, ended = ep.reward, ep.ended
    assert reward is not None and ended is not None, "a row is made of a finished episode"
    task = tasks.get(ep.task_id)
    domain = domains.get(ep.task_id.split("/", 1)[0])
    if task is None or domain is None or domain.spec is None:
        return None
    tools = ep.offered_tools if ep.offered_tools is not None else offered_by_task(task, domain)
    assistant = [e for e in ep.timeline if isinstance(e, MessageSent) and e.role == "assistant"]
    token_ids = [e.token_ids for e in assistant]
    logprobs = [e.logprobs for e in assistant]
    return {
        "episode_id": ep.episode_id,
        "task_id": ep.task_id,
        "domain": ep.domain,
        "attempt": ep.attempt,
        "kind": episode_kind(ep),
        "label": ep.label,
        "instruction": task.instruction,
        "tools": tools,
        "messages": ep.trajectory(),
        "reward": reward.reward,
        "reward_breakdown": reward.breakdown,
        "reward_version": reward.reward_version,
        "reward_diff": reward.diff,
        "end_reason": ended.reason,
        "fault": ended.fault,
        "turns": ended.turns,
        "tool_calls": ended.tool_calls,
        "seeds": {"run": run_seed, "episode": ep.seed, "client": ep.client_seed},
        "assistant_token_ids": token_ids if any(t is not None for t in token_ids) else None,
        "assistant_logprobs": logprobs if any(lp is not None for lp in logprobs) else None,
    }


def offered_by_task(task: TaskView, domain: DomainView) -> list[dict[str, Any]]:
    """The tools an episode of ``task`` is offered, derived from the task (its environment's
    verified tools, OpenAI function format): what a row carries when the log does not
    record them (logs older than format 3, served episodes)."""
    assert domain.spec is not None
    return openai_tools(environment_tools(domain.spec.tools, domain.verified, task.env_tools))


@attrs.define
class Exported:
    """What :func:`log_rows` went through: rows given, and finished episodes of other kinds left out."""

    rows: int = 0
    left_out: dict[str, int] = attrs.field(factory=dict)


def log_rows(log: Log, kinds: Iterable[str] = DEFAULT_KINDS, tally: Exported | None = None) -> Iterator[dict[str, Any]]:
    """The rows of :func:`episode_rows` for the whole log, in the same order, reading one
    episode's stream at a time (see the module doc); ``tally`` (updated as rows are
    given) counts them and the finished episodes of kinds not asked for. Synchronous
    reads of ``log``, which must stay open while the rows are consumed."""
    wanted = frozenset(check_kinds(kinds))
    tally = tally if tally is not None else Exported()
    view = project(log, write=False, digests=False)  # domains and tasks; episodes are not decoded
    seed = int((log.meta_get("run_config") or {}).get("seed", 0))
    for stream, _ in log.streams("episode/"):
        eid = stream[len("episode/"):]
        if not episode_finished(view.episodes, eid):
            continue  # no reward: no row (read from the checkpoint, without reading the stream)
        ep = fold_episode((r.event for r in log.read_stream(stream)), None, eid)
        if ep.reward is None or ep.ended is None:
            continue
        kind = episode_kind(ep)
        if kind not in wanted:
            tally.left_out[kind] = tally.left_out.get(kind, 0) + 1
            continue
        row = episode_row(ep, view.tasks, view.domains, seed)
        if row is not None:
            tally.rows += 1
            yield row


PARQUET_BATCH = 512
"""Rows per parquet row group when streaming (memory holds one group's rows)."""


def export_to(log: Log, out: Any, fmt: str = "jsonl", kinds: Iterable[str] = DEFAULT_KINDS) -> Exported:
    """Write the rows of :func:`log_rows` to the path ``out`` as ``jsonl`` or ``parquet``
    (needs pyarrow >= 19), one episode (or row group) in memory at a time; returns the
    tally. Reads ``log`` only."""
    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"format must be jsonl or parquet, not {fmt!r}")
    tally = Exported()
    rows = log_rows(log, kinds, tally)
    if fmt == "jsonl":
        write_jsonl(rows, out)
    else:
        write_parquet(rows, out)
    return tally


def _schemas() -> tuple[Any, Any]:
    """(the parquet schema, the same with JSON columns as their string storage)."""
    import pyarrow as pa

    def build(json_type: Any) -> Any:
        call = pa.struct([("id", pa.string()), ("type", pa.string()),
                          ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())]))])
        message = pa.struct([("role", pa.string()), ("content", pa.string()), ("tool_calls", pa.list_(call)),
                             ("tool_call_id", pa.string())])
        tool = pa.struct([("type", pa.string()),
                          ("function", pa.struct([("name", pa.string()), ("description", pa.string()),
                                                  ("parameters", json_type)]))])
        return pa.schema([
            ("episode_id", pa.string()), ("task_id", pa.string()), ("domain", pa.string()), ("attempt", pa.int64()),
            ("kind", pa.string()), ("label", pa.string()), ("instruction", pa.string()),
            ("tools", pa.list_(tool)), ("messages", pa.list_(message)),
            ("reward", pa.float64()), ("reward_breakdown", json_type), ("reward_version", pa.string()),
            ("reward_diff", pa.list_(pa.string())), ("end_reason", pa.string()), ("fault", pa.string()),
            ("turns", pa.int64()), ("tool_calls", pa.int64()),
            ("seeds", pa.struct([("run", pa.int64()), ("episode", pa.int64()), ("client", pa.int64())])),
            ("assistant_token_ids", pa.list_(pa.list_(pa.int64()))),
            ("assistant_logprobs", pa.list_(pa.list_(pa.float64()))),
        ])

    return build(pa.json_()), build(pa.string())


def _storage_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its JSON-typed values as JSON text (key order kept: templates print it)."""
    for i, m in enumerate(row["messages"]):
        extra = set(m) - set(MESSAGE_FIELDS)
        if extra:
            raise ValueError(f"{row['episode_id']}: message {i} has fields the parquet schema lacks: {sorted(extra)}")
    tools = [{**t, "function": {**t["function"], "parameters": json.dumps(t["function"]["parameters"])}}
             for t in row["tools"]]
    return {**row, "tools": tools, "reward_breakdown": json.dumps(row["reward_breakdown"])}


def parquet_table(rows: list[dict[str, Any]]) -> Any:
    """The rows as a pyarrow Table with :func:`parquet_schema` (needs pyarrow >= 19:
    ``pip install 'scaleenv[export]'``)."""
    import pyarrow as pa

    schema, storage = _schemas()
    table = pa.Table.from_pylist([_storage_row(r) for r in rows], schema=storage)
    return table.cast(schema)


def parquet_schema() -> Any:
    """The export's parquet schema (a ``pyarrow.Schema``; see the module doc)."""
    return _schemas()[0]


def write_parquet(rows: Iterable[dict[str, Any]], out: Any, batch: int = PARQUET_BATCH) -> int:
    """Write the rows to a parquet file with the typed schema (see the module doc), in row
    groups of ``batch`` rows as they come; returns how many were written."""
    import pyarrow.parquet as pq

    n, pending, writer = 0, [], None
    try:
        for row in rows:
            pending.append(row)
            if len(pending) >= batch:
                table = parquet_table(pending)
                writer = writer or pq.ParquetWriter(out, table.schema)
                writer.write_table(table)
                n, pending = n + len(pending), []
        if pending or writer is None:  # the last group, or an empty file with the schema
            table = parquet_table(pending)
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            n += len(pending)
    finally:
        if writer is not None:
            writer.close()
    return n


def write_jsonl(rows: Iterable[dict[str, Any]], out: Any) -> int:
    """Write the rows as JSON lines to the path ``out``; returns how many were written."""
    n = 0
    with open(out, "w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True, default=str) + "\n")
            n += 1
    return n


def export_log(log_path: Any, out: Any, fmt: str = "jsonl", kinds: Iterable[str] = DEFAULT_KINDS) -> int:
    """Export every finished episode of the given kinds (default: all but the env
    checker's) of the log at ``log_path`` to ``out`` (``jsonl`` or ``parquet``); returns
    the number of episodes written. Reads the log only, one episode at a time
    (:func:`export_to`). ``out`` is written whole or not at all: through a temporary file
    beside it, moved onto it once every row is written and synced (a failure or Ctrl-C
    leaves the old file as it was and no partial one; see :func:`scaleenv._outfile.replaced_when_done`)."""
    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"format must be jsonl or parquet, not {fmt!r}")
    kinds = check_kinds(kinds)
    with Log.open(log_path, readonly=True) as log, replaced_when_done(out) as partial:
        return export_to(log, partial, fmt, kinds).rows


def kind_counts(view: RunView) -> dict[str, int]:
    """How many finished episodes of each kind the run holds."""
    counts = dict.fromkeys(KINDS, 0)
    for ep in view.episodes.values():
        if ep.reward is not None and ep.ended is not None:
            counts[episode_kind(ep)] += 1
    return counts
