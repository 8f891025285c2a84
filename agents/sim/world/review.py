"""The simulated reviewer's reading of code against the spec and contract.

It knows what an implementation of each condition looks like (the lines the generic
translation in :mod:`codegen` writes for it) and looks for them in the code it is shown;
a condition whose lines are missing or altered becomes a concrete objection.
"""

from __future__ import annotations

from scaleenv._model.contracts import render
from scaleenv._store.specs import DomainSpec, ToolSpec

from .codegen import generate, is_result_post


def findings(domain: DomainSpec, tool: ToolSpec, code: str) -> tuple[list[str], list[str]]:
    """(objections for what is wrong, sentences about what is right: candidates for a wrong objection)."""
    reference = generate(domain, tool)
    present = {line.strip() for line in code.splitlines()}
    wrong: list[str] = []
    right: list[str] = []
    header = reference.code.splitlines()[0].strip()
    if header not in present:
        wrong.append(f"The function must be defined as `{header[:-1]}` (tool name and parameters as in the spec).")
    for feature, lines in sorted(reference.features.items()):
        missing = [ln for ln in lines if ln not in present]
        kind, _, idx = feature.partition(":")
        if kind in ("pre", "post"):
            cond = tool.contract[int(idx)]
            text = render(cond)
            why = f" ({cond.why})" if cond.why else ""
            if kind == "pre":
                if missing:
                    wrong.append(f"The pre-condition `{text}`{why} is not enforced as written: "
                                 f"there is no ToolError guard matching it (expected something like `{lines[0]}`).")
                else:
                    right.append(f"The pre-condition `{text}`{why} may not be enforced on every path; "
                                 "please add an explicit ToolError guard for it.")
            elif is_result_post(cond):
                # About the record the tool creates and returns ($result): the new record must say so.
                if missing:
                    wrong.append(f"The post-condition `{text}`{why} does not hold for the record the tool returns: "
                                 f"`{missing[-1]}` is missing or different.")
                else:
                    right.append(f"The post-condition `{text}` looks fragile: make sure the returned id is the new record's key.")
            else:
                if missing:
                    wrong.append(f"The post-condition `{text}` is not implemented correctly: "
                                 f"the update `{missing[-1]}` is missing or different.")
                else:
                    right.append(f"The post-condition `{text}` looks fragile: make sure the update happens after all checks.")
        elif kind == "lookup" and missing:
            wrong.append(f"The lookup must return the record whose `{tool.params[0].name}` field matches and raise "
                         f"ToolError when no record matches (expected `{missing[0]}`).")
        elif kind == "filter" and missing:
            wrong.append(f"The list must be filtered by the parameters (expected `{missing[0]}`).")
        elif kind == "create" and missing:
            wrong.append(f"The new record must get a fresh key derived from the state and be stored (expected `{missing[0]}`).")
    return wrong, right
