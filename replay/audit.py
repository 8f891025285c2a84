"""The audit trail of one synthesized tool, rebuilt from its stream and its domain's stream."""

from __future__ import annotations

import difflib
from typing import Any

import msgspec

from scaleenv._model.contracts import render
from scaleenv._store.events.llm import CallResolver, LlmCalled, LlmExhausted
from scaleenv._store.events.synth import (
    CodeCheckFailed,
    CodeProposed,
    GraphEdgeAdded,
    ReviewGiven,
    SchemaDefined,
    GraphEdgeJudged,
    TestCasesProposed,
    TestCasesRepaired,
    TestsRun,
    ToolAccepted,
    ToolDebugged,
    ToolRejected,
    ToolsDesigned,
)
from scaleenv._store.log import Log
from scaleenv._streams import TOOL, domain_stream


class UnknownTool(LookupError):
    pass


def find_tool_streams(log: Log, query: str) -> list[str]:
    """Tool streams matching ``domain.tool``, ``slot/tool``, ``tool/slot/tool`` or a bare tool name."""
    streams = [s for s, _ in log.streams(TOOL)]
    if query in streams:
        return [query]
    if TOOL + query in streams:
        return [TOOL + query]
    if "." in query:
        domain, _, tool = query.partition(".")
        matches = []
        for s in streams:
            if s.rsplit("/", 1)[-1] != tool:
                continue
            slot = s.split("/")[1]
            design = [r.event for r in log.read_stream(domain_stream(slot)) if isinstance(r.event, SchemaDefined)]
            if design and design[-1].spec.name == domain:
                matches.append(s)
        return matches
    return [s for s in streams if s.rsplit("/", 1)[-1] == query]


def tool_audit(log: Log, stream: str) -> dict[str, Any]:
    slot, tool = stream.split("/")[1], stream.split("/")[2]
    domain_events = [r for r in log.read_stream(domain_stream(slot))]
    spec = None
    for r in domain_events:
        if isinstance(r.event, SchemaDefined):
            spec = r.event.spec
    tool_spec = spec.tool(tool) if spec else None
    entries: list[dict[str, Any]] = []
    versions: list[tuple[int, str]] = []
    verdict: dict[str, Any] = {"status": "pending"}
    case_sources: dict[str, list[str]] = {}
    calls = CallResolver()
    for r in log.read_stream(stream):
        e = r.event
        base = {"n": r.n, "type": r.type, "actor": r.actor, "cause": str(r.cause) if r.cause else None}
        if isinstance(e, LlmCalled):
            e = calls.resolve(r.stream, r.n, e)
            base.update(role=e.role, backend=e.backend, model=e.model, attempt=e.attempt, seed=e.seed,
                        messages=e.messages, raw=e.raw, error=e.error,
                        tokens={"prompt": e.prompt_tokens, "completion": e.completion_tokens})
        elif isinstance(e, LlmExhausted):
            base.update(role=e.role, attempts=e.attempts, last_error=e.last_error)
        elif isinstance(e, CodeProposed):
            diff = ""
            if versions:
                diff = "".join(difflib.unified_diff(
                    versions[-1][1].splitlines(keepends=True), e.code.splitlines(keepends=True),
                    fromfile=f"round {versions[-1][0]}", tofile=f"round {e.round}",
                ))
            versions.append((e.round, e.code))
            base.update(round=e.round, author=e.author, code=e.code, code_digest=e.code_digest, diff=diff)
        elif isinstance(e, CodeCheckFailed):
            base.update(round=e.round, issues=e.issues)
        elif isinstance(e, ReviewGiven):
            base.update(round=e.round, accepted=e.accepted, objections=e.objections)
        elif isinstance(e, TestCasesProposed):
            base.update(cases=[msgspec.to_builtins(c) for c in e.cases])
            for c in e.cases:
                if c.condition is not None and tool_spec is not None:
                    case_sources.setdefault(render(tool_spec.contract[c.condition]), []).append(c.name)
        elif isinstance(e, ToolDebugged):
            base.update(round=e.round, verdict=e.verdict, reason=e.reason)
        elif isinstance(e, TestCasesRepaired):
            base.update(round=e.round, fixes=[msgspec.to_builtins(f) for f in e.fixes], cases=len(e.cases))
        elif isinstance(e, TestsRun):
            base.update(round=e.round, code_digest=e.code_digest, passed=e.passed, failed=e.failed,
                        results=[msgspec.to_builtins(x) for x in e.results])
        elif isinstance(e, ToolAccepted):
            verdict = {"status": "accepted", "code_digest": e.code_digest, "rounds": e.rounds}
        elif isinstance(e, ToolRejected):
            verdict = {"status": "rejected", "reasons": e.reasons, "rounds": e.rounds}
        entries.append(base)
    edges = [
        {"src": r.event.src, "dst": r.event.dst, "kind": r.event.kind, "feeds": r.event.feeds, "why": r.event.why}
        for r in domain_events
        if isinstance(r.event, GraphEdgeAdded) and tool in (r.event.src, r.event.dst)
    ]
    judged = [
        {"src": r.event.src, "dst": r.event.dst, "kind": r.event.kind, "keep": r.event.keep, "reason": r.event.reason}
        for r in domain_events
        if isinstance(r.event, GraphEdgeJudged) and tool in (r.event.src, r.event.dst)
    ]
    designed = next((r.event.group for r in domain_events if isinstance(r.event, ToolsDesigned)
                     and any(t.name == tool for t in r.event.tools)), None)
    contract = []
    if tool_spec is not None:
        for c in tool_spec.contract:
            text = render(c)
            contract.append({"condition": text, "when": c.when, "cases": case_sources.get(text, [])})
    return {
        "stream": stream,
        "domain": spec.name if spec else None,
        "tool": tool,
        "spec": msgspec.to_builtins(tool_spec) if tool_spec else None,
        "contract": contract,
        "history": entries,
        "verdict": verdict,
        "designed_in_group": designed,
        "graph_edges": edges,
        "graph_judgements": judged,
    }


def render_audit(a: dict[str, Any], full: bool = False) -> str:
    cut = (lambda s, n: s) if full else (lambda s, n: s if len(s) <= n else s[:n] + f"... [{len(s) - n} more chars; --full]")
    out = [f"# {a['domain']}.{a['tool']}  ({a['stream']})", f"verdict: {a['verdict']}",
           f"designed in group: {a.get('designed_in_group')}", "", "## contract"]
    for c in a["contract"]:
        cases = ", ".join(c["cases"]) if c["cases"] else ("(checked after every successful call)" if c["when"] == "post" else "(no case)")
        out.append(f"- {c['condition']}    cases: {cases}")
    out.append("")
    out.append("## history")
    for h in a["history"]:
        head = f"[{h['n']}] {h['type']} by {h['actor']}" + (f" (cause {h['cause']})" if h["cause"] else "")
        out.append(head)
        t = h["type"]
        if t == "llm.called":
            out.append(f"    {h['role']} via {h['backend']}/{h['model']} attempt {h['attempt']}, tokens {h['tokens']}")
            if full:
                for m in h["messages"]:
                    out.append(f"    > {m.get('role')}: {m.get('content')}")
            out.append("    output: " + cut(str(h["raw"]), 300))
            if h["error"]:
                out.append(f"    REJECTED: {h['error']}")
        elif t == "tool.code_proposed":
            out.append(f"    round {h['round']} by {h['author']}, digest {h['code_digest']}")
            body = h["diff"] or h["code"]
            out.extend("    | " + line for line in cut(body, 3000).splitlines())
        elif t == "tool.code_check_failed":
            out.extend(f"    ! {i}" for i in h["issues"])
        elif t == "tool.review":
            out.append(f"    {'accepted' if h['accepted'] else 'objections: ' + '; '.join(h['objections'])}")
        elif t == "tool.tests_proposed":
            for c in h["cases"]:
                out.append(f"    - {c['name']}: {c['args']} expect {c['expect']} {('(' + c['note'] + ')') if c['note'] else ''}")
        elif t == "tool.tests_run":
            out.append(f"    round {h['round']}: {h['passed']} passed, {h['failed']} failed")
            for r in h["results"]:
                if not r["passed"]:
                    out.append(f"    x {r['name']}: {r['failure']}")
        elif t == "tool.debugged":
            out.append(f"    round {h['round']}: {'the tool is' if h['verdict'] == 'tool' else 'the tests are'} wrong: {h['reason']}")
        elif t == "tool.tests_repaired":
            out.extend(f"    ~ {f['case']}: {f['action']} ({f['reason']})" for f in h["fixes"])
        elif t in ("tool.accepted", "tool.rejected"):
            out.append(f"    {a['verdict']}")
    out.append("")
    out.append("## graph edges")
    for e in a["graph_edges"]:
        out.append(f"- {e['src']} -> {e['dst']} [{e['kind']}] {e['why']}")
    for j in a.get("graph_judgements", []):
        out.append(f"- judged {j['src']} -> {j['dst']} [{j['kind']}]: {'kept' if j['keep'] else 'dropped'}, {j['reason']}")
    return "\n".join(out) + "\n"
