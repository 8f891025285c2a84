"""Verified tools as OpenAI function-tool schemas (what the policy is offered)."""

from __future__ import annotations

from typing import Any

from scaleenv._store.specs import ToolSpec

_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


def param_schema(type_: str, description: str) -> dict[str, Any]:
    if type_ == "list[str]":
        return {"type": "array", "items": {"type": "string"}, "description": description}
    return {"type": _JSON_TYPES[type_], "description": description}


def openai_tool(tool: ToolSpec) -> dict[str, Any]:
    fields = ", ".join(f.name for f in tool.returns)
    returns = f"Returns a list of objects with: {fields}." if tool.returns_list else f"Returns: {fields}."
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": f"{tool.description} {returns}",
            "parameters": {
                "type": "object",
                "properties": {p.name: param_schema(p.type, p.description) for p in tool.params},
                "required": [p.name for p in tool.params if p.required],
                "additionalProperties": False,
            },
        },
    }


def openai_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [openai_tool(t) for t in sorted(tools, key=lambda t: t.name)]


def environment_tools(tools: list[ToolSpec], verified: list[str] | tuple[str, ...],
                      env_tools: list[str] | tuple[str, ...] = ()) -> list[ToolSpec]:
    """The tools an episode of a task offers, in the domain's order: the verified tools of
    the task's environment (H), or every verified tool for a task that names none (older
    logs). Rollouts, served episodes and exports all offer exactly these."""
    names = set(verified) & set(env_tools or verified)
    return [t for t in tools if t.name in names]
