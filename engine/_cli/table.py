"""Plain-text tables for command summaries (stdout)."""

from __future__ import annotations

from typing import Any


def render_table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for i, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _k(n: Any) -> Any:
    """A token count in thousands (93412 -> 93k)."""
    return f"{round(n / 1000)}k" if isinstance(n, int | float) and n >= 1000 else n


def render_summary(result: dict[str, Any]) -> str:
    """The run summary as the paper's table: per domain its tools and tables, its tasks (mean
    environment size |H|, goals, golden tool calls, distractors, tokens per task) and its
    episodes (pass@1, pass@k, turns, tool calls, user requests raised)."""
    rows = []
    for d in result["domains"]:
        passk = next((v for k, v in d.items() if k.startswith("pass_at_") and k != "pass_at_1"), None)
        rows.append([
            d["slot"], d["name"] or "-", d.get("tables", "-"), d["tools_verified"], d["tools_rejected"],
            d["graph_edges"], d["tasks"], sum(d["tasks_discarded"].values()), d.get("mean_env_tools"), d.get("mean_goals"),
            d.get("mean_golden_tool_calls"), d["distractors_per_task"], _k(d.get("tokens_per_task")),
            d["episodes"], d["pass_at_1"], passk, d["mean_turns"], d["mean_tool_calls"], d.get("mean_user_requests"),
        ])
    table = render_table(
        ["slot", "domain", "tables", "tools", "rejected", "edges", "tasks", "discarded", "|H|", "goals",
         "golden calls", "distractors", "tokens/task", "episodes", "pass@1", "pass@k", "turns", "tool calls",
         "requests"],
        rows,
    )
    reasons: dict[str, int] = {}
    for d in result["domains"]:
        for k, v in d["end_reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    tail = ""
    if reasons:
        tail = "episode endings (reason/fault): " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) + "\n"
    return table + tail + f"events {result['events']}  streams {result['streams']}  digest {result['digest']}\n"
