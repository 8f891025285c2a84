"""Stage 1 at scale: what the domains are (sizes, shapes, repairs, tokens) and what they cost.

Synthesizes N domains on the sim (no latency by default: the engine's own cost) and
prints per domain the tools designed/verified/rejected, tables, graph edges by kind,
repair rounds by kind (code, fixture), LLM calls and tokens; then the structural
diversity over the domains made: the share of distinct relational shapes, a shape being
the graph of tables and foreign keys with every name, column and type removed (its
Weisfeiler-Lehman hash), so adding or renaming columns does not make a new shape. The
baseline in the same run: the same measure over the briefs' names alone (one shape per
distinct brief would be 1.0 only if every domain were structurally new).

    python bench/synth.py [--domains 16] [--preset paper] [--latency] [--json]

``--json`` prints one object on its last line with at least ``domains``,
``tools_per_domain``, ``tables_per_domain``, ``distinct_shape_share``,
``tokens_per_domain`` (mean), ``prompt_tokens_per_call_by_role``, ``per_tool_prompt_tokens``
(a per-tool role's prompt in the smallest and the largest domain: it must not grow with the
domain) and ``seconds``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import networkx as nx

import scaleenv
from scaleenv._store.specs import DomainSpec
from scaleenv._agents.llm.port import output_tokens


def shape_hash(spec: DomainSpec) -> str:
    """The Weisfeiler-Lehman hash of the table graph: nodes are tables, a directed edge per
    referenced table (labelled with how many foreign keys point there); no names at all."""
    g = nx.DiGraph()
    for t in spec.tables:
        g.add_node(t.name)
    for t in spec.tables:
        for f in t.fields:
            if f.ref and g.has_node(f.ref):
                if g.has_edge(t.name, f.ref):
                    g[t.name][f.ref]["n"] = str(int(g[t.name][f.ref]["n"]) + 1)
                else:
                    g.add_edge(t.name, f.ref, n="1")
    with warnings.catch_warnings():  # networkx notes that its directed hashes changed in 3.5: ours are one run's
        warnings.simplefilter("ignore")
        return nx.weisfeiler_lehman_graph_hash(g, edge_attr="n", iterations=4)


PER_TOOL_ROLES = ("coder", "reviewer", "tester", "debugger", "repairer")


def _prompt_sizes(path: str, view: Any) -> dict[str, Any]:
    """Prompt tokens (the sim's estimate: characters / 4) per call by role, per domain, and how
    a per-tool role's prompt grows with the domain's size (largest domain / smallest)."""
    by_role: dict[str, list[int]] = {}
    longest: dict[str, int] = {}
    per_domain: dict[str, int] = {}
    per_tool_by_domain: dict[str, list[int]] = {}
    with scaleenv.Log.open(path, readonly=True) as log:
        for rec in log.read():
            ev = rec.event
            if type(ev).__name__ != "LlmCalled":
                continue
            by_role.setdefault(ev.role, []).append(ev.prompt_tokens)
            longest[ev.role] = max(longest.get(ev.role, 0), ev.completion_tokens)
            kind, _, rest = rec.stream.partition("/")
            slot = rest.split("/", 1)[0]
            if kind in ("domain", "tool"):
                per_domain[slot] = per_domain.get(slot, 0) + ev.prompt_tokens
            if kind == "tool" and ev.role in PER_TOOL_ROLES:
                per_tool_by_domain.setdefault(slot, []).append(ev.prompt_tokens)
    sizes = {slot: len(d.tools) for slot, d in view.domains.items()}
    means = {slot: statistics.mean(v) for slot, v in per_tool_by_domain.items() if v}
    small = min(means, key=lambda s: (sizes.get(s, 0), s)) if means else None
    large = max(means, key=lambda s: (sizes.get(s, 0), s)) if means else None
    return {
        "prompt_tokens_per_call_by_role": {r: round(statistics.mean(v)) for r, v in sorted(by_role.items())},
        "calls_by_role": {r: len(v) for r, v in sorted(by_role.items())},
        # The longest answer per role against the max_tokens it is sent with.
        "completion_tokens_max_by_role": {r: [longest[r], output_tokens(r)] for r in sorted(longest)},
        "prompt_tokens_per_domain": round(statistics.mean(per_domain.values())) if per_domain else 0,
        "per_tool_prompt_tokens": {"smallest_domain_tools": sizes.get(small, 0) if small else 0,
                                   "smallest": round(means[small]) if small else 0,
                                   "largest_domain_tools": sizes.get(large, 0) if large else 0,
                                   "largest": round(means[large]) if large else 0,
                                   "ratio": round(means[large] / means[small], 3) if small and large else None},
    }


def run(domains: int, preset: str, seed: int, latency: bool, tmp: Path) -> dict[str, Any]:
    path = str(tmp / "log")
    config: dict[str, Any] = {"seed": seed, "domains": domains, "preset": preset, "episodes_per_task": 0}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    result = scaleenv.run(path, config, scaleenv.EngineOptions(progress=False, sync=False, latency=latency),
                          stages=("synth",))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    with scaleenv.Log.open(path, readonly=True) as log:
        view = scaleenv.fold(log.read())
    specs = [d.spec for d in view.domains.values() if d.spec is not None]
    prompts = _prompt_sizes(path, view)
    shapes = [shape_hash(s) for s in specs]
    rows = result["domains"]
    return {
        "domains": len(rows),
        "tools_per_domain": [d["tools_proposed"] for d in rows],
        "verified_per_domain": [d["tools_verified"] for d in rows],
        "rejected_per_domain": [d["tools_rejected"] for d in rows],
        "tables_per_domain": [d["tables"] for d in rows],
        "edges_by_kind": {k: sum(d["edges_by_kind"][k] for d in rows) for k in ("data", "state", "shared")},
        "code_repairs": sum(d["code_repairs"] for d in rows),
        "fixture_repairs": sum(d["fixture_repairs"] for d in rows),
        "llm_calls_per_domain": statistics.mean(d["llm_calls"] for d in rows) if rows else 0,
        "tokens_per_domain": statistics.mean(d["tokens"] for d in rows) if rows else 0,
        "distinct_shapes": len(set(shapes)),
        "distinct_shape_share": len(set(shapes)) / len(shapes) if shapes else 0.0,
        "baseline_distinct_name_share": len({s.name for s in specs}) / len(specs) if specs else 0.0,
        **prompts,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "cpu_ms_per_tool": 1000 * cpu / max(1, sum(d["tools_proposed"] for d in rows)),
        "peak_rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, default=16)
    parser.add_argument("--preset", choices=("default", "paper"), default="paper")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", action="store_true", help="the sim's latency model on (wall time like real inference)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="scaleenv-bench-synth-"))
    try:
        out = run(args.domains, args.preset, args.seed, args.latency, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tools = out["tools_per_domain"]
    print(f"{out['domains']} domains ({args.preset} preset) in {out['seconds']:.1f} s, {out['cpu_seconds']:.1f} s CPU "
          f"({out['cpu_ms_per_tool']:.0f} ms per tool)")
    print(f"tools per domain: {min(tools)}-{max(tools)} (mean {statistics.mean(tools):.1f}); "
          f"tables {min(out['tables_per_domain'])}-{max(out['tables_per_domain'])}")
    print(f"verified {sum(out['verified_per_domain'])}, rejected {sum(out['rejected_per_domain'])}; repairs: "
          f"{out['code_repairs']} of code, {out['fixture_repairs']} of test fixtures")
    print(f"graph edges: {out['edges_by_kind']}")
    print(f"LLM calls per domain {out['llm_calls_per_domain']:.0f}, tokens per domain {out['tokens_per_domain']:.0f} "
          "(the paper: ~546k)")
    pt = out["per_tool_prompt_tokens"]
    print(f"prompt tokens per call by role (the sim's estimate: chars/4): {out['prompt_tokens_per_call_by_role']}")
    print(f"longest answer per role [tokens, max_tokens sent]: {out['completion_tokens_max_by_role']}")
    print(f"per-tool roles: {pt['smallest']} tokens per call in the smallest domain ({pt['smallest_domain_tools']} tools), "
          f"{pt['largest']} in the largest ({pt['largest_domain_tools']} tools): x{pt['ratio']}")
    print(f"distinct relational shapes: {out['distinct_shapes']}/{out['domains']} = {out['distinct_shape_share']:.2f} "
          f"(baseline, distinct names: {out['baseline_distinct_name_share']:.2f})")
    if args.json:
        print(json.dumps({"bench": "synth", **out}))


if __name__ == "__main__":
    main()
