"""``scaleenv audit | show | export``: read a run's log (never writes)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from scaleenv._cli import EXIT_FAILED, EXIT_OK, described
from scaleenv._errors import UsageError
from scaleenv._streams import TOOL, parse
from .outfile import replaced_when_done


def _open(path: str) -> Any:
    from scaleenv._store.log import Log

    if not Path(path).exists():
        raise UsageError(f"no log at {path} (pass --log PATH; create one with `scaleenv run`)")
    return Log.open(path, readonly=True)


def handle_audit(args: argparse.Namespace) -> int:
    from scaleenv._replay.audit import find_tool_streams, render_audit, tool_audit

    with _open(args.log) as log:
        streams = find_tool_streams(log, args.tool)
        if not streams:
            known = sorted({parse(s).id for s, _ in log.streams(TOOL)})[:12]
            raise UsageError(f"no tool {args.tool!r} in {args.log}; tools look like {known} (or DOMAIN.TOOL)")
        audits = [tool_audit(log, s) for s in streams]
    if args.json:
        print(json.dumps(audits[0] if len(audits) == 1 else audits, sort_keys=True, default=str))
    else:
        sys.stdout.write("\n".join(render_audit(a, full=args.full) for a in audits))
    return EXIT_OK


def _state_lines(state: dict[str, Any], marked: set[tuple[str, str]], mark: str) -> list[str]:
    lines = []
    for table in sorted(state):
        lines.append(f"  {table}:")
        for key in sorted(state[table]):
            tag = f"  <- {mark}" if (table, key) in marked else ""
            lines.append(f"    {key}: {json.dumps(state[table][key], sort_keys=True)}{tag}")
    return lines


def handle_show(args: argparse.Namespace) -> int:
    from scaleenv._replay.episode_state import find_domain, task_ids, task_view
    from scaleenv._model.contracts import render

    with _open(args.log) as log:  # only the streams asked about, through the per-stream index
        if args.what == "task":
            task, known = task_view(log, args.id), task_ids(log, 8)
        else:
            domain, names = find_domain(log, args.id)
    if args.what == "task":
        if task is None:
            raise UsageError(f"no task {args.id!r}; tasks look like {known}")
        data = {
            "task_id": task.task_id, "domain": task.domain, "status": task.status, "reason": task.reason,
            "detail": task.detail, "chain": task.chain, "instruction": task.instruction, "user_facts": task.user_facts,
            "golden_chain": [msgspec.to_builtins(s) for s in task.golden.steps] if task.golden else [],
            "expected_answers": task.golden.expected_answers if task.golden else [],
            "initial_state": task.initial_state, "distractors": task.distractors, "expected_final_state": task.expected_final,
        }
        if args.json:
            print(json.dumps(data, sort_keys=True, default=str))
            return EXIT_OK
        out = [f"task {task.task_id} ({task.domain}): {task.status} {task.reason} {task.detail}".rstrip(),
               f"chain: {' -> '.join(task.chain)}", f"instruction: {task.instruction}", f"user facts: {task.user_facts}"]
        if task.golden:
            out.append("golden chain:")
            for s in task.golden.steps:
                out.append(f"  {s.tool}({json.dumps(s.args, sort_keys=True)}) -> {json.dumps(s.result, sort_keys=True, default=str)[:200]}")
            if task.golden.expected_answers:
                out.append(f"answers the agent must give: {task.golden.expected_answers}")
        if task.initial_state is not None:
            out.append("initial state (distractors marked):")
            out.extend(_state_lines(task.initial_state, {tuple(d) for d in task.distractors}, "distractor"))  # type: ignore[misc]
        if task.expected_final is not None and task.golden:
            changed = {(c.table, c.key) for s in task.golden.steps for c in s.delta}
            out.append("expected final state (changed records marked):")
            out.extend(_state_lines(task.expected_final, changed, "changed"))
        sys.stdout.write("\n".join(out) + "\n")
        return EXIT_OK
    # domain
    if domain is None or domain.spec is None:
        raise UsageError(f"no domain {args.id!r}; domains: {names}")
    spec = domain.spec
    if args.json:
        print(json.dumps({"slot": domain.slot, "spec": msgspec.to_builtins(spec), "verified": domain.verified,
                          "rejected": domain.rejected, "edges": [msgspec.to_builtins(e) for e in domain.edges]},
                         sort_keys=True))
        return EXIT_OK
    out = [f"domain {spec.name} ({domain.slot}): {spec.description}", "tables:"]
    for t in spec.tables:
        out.append(f"  {t.name} [{t.primary_key}]: " + ", ".join(
            f"{f.name}:{f.type}" + (f"->{f.ref}" if f.ref else "") + (f"{{{'|'.join(f.enum)}}}" if f.enum else "") for f in t.fields))
    out.append("tools:")
    for t in spec.tools:
        status = "verified" if t.name in domain.verified else ("rejected" if t.name in domain.rejected else "pending")
        out.append(f"  {t.name}({', '.join(p.name for p in t.params)}) [{status}] {t.description}")
        for c in t.contract:
            out.append(f"      {render(c)}")
    out.append("graph edges:")
    for e in domain.edges:
        out.append(f"  {e.src} -> {e.dst} [{e.kind}] {e.why}")
    sys.stdout.write("\n".join(out) + "\n")
    return EXIT_OK


def _check_out(path: str) -> Path:
    """The ``--out`` file, refused before any work if it cannot be written there."""
    out = Path(path)
    if out.is_dir():
        raise UsageError(f"--out {path} is a directory; give the path of a file to write")
    parent = out.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"--out {path}: the directory {parent} {what}; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path}: no permission to write in {parent}")
    if out.exists() and not os.access(out, os.W_OK):
        raise UsageError(f"--out {path}: no permission to overwrite it")
    return out


def handle_export(args: argparse.Namespace) -> int:
    from scaleenv._replay.export import KINDS, check_kinds, export_to

    out = _check_out(args.out)
    try:
        kinds = check_kinds(k.strip() for k in args.only.split(",") if k.strip())
    except ValueError as exc:
        raise UsageError(f"--only: {exc}") from None
    if args.format == "parquet":
        try:
            import pyarrow
        except ImportError:
            raise UsageError("--format parquet needs pyarrow: pip install 'scaleenv[export]'") from None
        if not hasattr(pyarrow, "json_"):
            raise UsageError(f"--format parquet needs pyarrow >= 19 (its JSON type), not {pyarrow.__version__}: "
                             "pip install 'scaleenv[export]'")
    with _open(args.log) as log:  # one episode in memory at a time (replay.export streams them)
        try:
            with replaced_when_done(out) as partial:  # a failure mid-write leaves the old file (or none)
                exported = export_to(log, partial, args.format, kinds)
        except OSError as exc:  # a full disk, a file-size limit: name the output, not the temporary file
            raise OSError(exc.errno, f"--out: {exc.strerror or exc}", str(out)) from exc
    rows, left_out = exported.rows, {k: n for k in KINDS if (n := exported.left_out.get(k, 0))}
    summary = {"episodes": rows, "out": str(out), "format": args.format, "kinds": list(kinds),
               "left_out": left_out}
    if args.json:
        print(json.dumps(summary))
    else:
        skipped = "".join(f"; left out {n} {k} episodes (--only {k} to include them)" for k, n in left_out.items())
        print(f"wrote {rows} episodes to {out} ({args.format}){skipped}", file=sys.stderr)
    return EXIT_OK if rows else EXIT_FAILED


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("audit", parents=[common], help="a synthesized tool's whole history: prompts, outputs, code versions, tests, repairs, verdict",
                       **described("Print how a tool was made: every LLM call, every code version with diffs, every "
                                   "test run, every repair, the verdict, its contract (and which cases each condition "
                                   "produced) and its graph edges.",
                                   "  scaleenv audit d00/cancel_ticket_purchase --log run.lmdb\n"
                                   "  scaleenv audit retail.cancel_order --log run.lmdb --full   # whole prompts and outputs"))
    p.add_argument("tool", help="DOMAIN.TOOL (e.g. retail.cancel_order), SLOT/TOOL (e.g. d00/cancel_order) or a tool name")
    p.add_argument("--full", action="store_true", help="print whole prompts and outputs")
    p.set_defaults(handler=handle_audit)
    p = sub.add_parser("show", parents=[common], help="show a task (instruction, facts, golden chain, states) or a domain (schema, tools, graph)",
                       **described("Print one task (its instruction, the user's facts, the golden tool chain, the "
                                   "initial state with distractors marked) or one domain (its schema, tools and tool "
                                   "graph), as the run's log holds them.",
                                   "  scaleenv show task d00/t003 --log run.lmdb\n"
                                   "  scaleenv show domain d00 --log run.lmdb --json"))
    p.add_argument("what", choices=["task", "domain"])
    p.add_argument("id", help="a task id (e.g. d00/t003) or a domain name/slot")
    p.set_defaults(handler=handle_show)
    p = sub.add_parser("export", parents=[common], help="write one row per finished episode for RL trainers (OpenAI chat format)",
                       **described("Write one row per finished episode (its messages in OpenAI chat format, the "
                                   "tools, the reward) to a JSON-lines or Parquet file for RL trainers. An --out that "
                                   "cannot be written (no such directory, a directory) is refused before any work.",
                                   "  scaleenv export --log run.lmdb --out episodes.jsonl\n"
                                   "  scaleenv export --log run.lmdb --format parquet --out episodes.parquet --only local"))
    p.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--only", default="local,served", metavar="KINDS",
                   help="which finished episodes to write, comma-separated: local (rolled out by the engine), "
                        "served (played by an outside policy: serve, MCP, gymnasium), checker (served episodes "
                        "labelled checker, e.g. opened by gymnasium's env checker); default: local,served")
    p.set_defaults(handler=handle_export)
