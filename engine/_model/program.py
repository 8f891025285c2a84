"""Chain programs: a task's golden chain written as a short program of tool calls.

The chain writer writes each goal of a task as straight-line Python in which outputs feed
later inputs::

    applicant = call("find_applicant_by_email", email="amara.okafor@example.com")
    apps = call("list_applicant_applications", applicant_id=applicant["applicant_id"])
    call("withdraw_application", application_id=apps[0]["application_id"])

A program is parsed, never executed as Python: only statements of that form are
accepted (a call bound to a name or not; keyword arguments that are literals, names of
earlier results, or subscripts of them with literal keys), and the domain's tools are the
only callables. Its steps then run one by one in the sandbox, each argument resolved from
the literals and the earlier steps' results (:func:`resolve`). So a program is exactly as
executable as the tools it calls, and a hostile one is refused at parse time with the line
and column of what it tried.
"""

from __future__ import annotations

import ast
from typing import Any

import msgspec

from scaleenv._store.specs import DomainSpec


class ProgramError(ValueError):
    """A program that is not a chain program of the domain (names the line and what is wrong)."""


class Ref(msgspec.Struct, frozen=True, array_like=True):
    """An earlier step's result, then a path into it (field names and list indexes)."""

    step: int
    path: list[str | int]


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """One call of a program: the tool and each argument (a literal value, or a :class:`Ref`)."""

    tool: str
    args: dict[str, Any]
    refs: dict[str, Ref] = {}
    name: str | None = None  # the variable the result is bound to


MAX_STEPS = 40


def parse(source: str, domain: DomainSpec | None) -> list[Step]:
    """The steps of ``source``; raises :class:`ProgramError` for anything else.

    ``domain`` None: the form is checked but not the tools and their parameters (a reader
    that holds the program without the domain, as a model told the solution does)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ProgramError(f"line {exc.lineno}: not valid Python: {exc.msg}") from None
    bound: dict[str, int] = {}
    steps: list[Step] = []
    tools = {t.name: t for t in domain.tools} if domain is not None else None
    for stmt in tree.body:
        where = f"line {stmt.lineno}"
        target: str | None = None
        value: ast.expr
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            target, value = stmt.targets[0].id, stmt.value
        elif isinstance(stmt, ast.Expr):
            value = stmt.value
        else:
            raise ProgramError(f"{where}: only `name = call(\"tool\", ...)` or `call(...)` statements are allowed")
        if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "call"):
            raise ProgramError(f"{where}: every statement calls a tool with call(\"tool_name\", param=...)")
        if len(value.args) != 1 or not isinstance(value.args[0], ast.Constant) or not isinstance(value.args[0].value, str):
            raise ProgramError(f"{where}: call() takes the tool's name as its one positional argument")
        name = value.args[0].value
        tool = tools.get(name) if tools is not None else None
        if tool is None and tools is not None:
            raise ProgramError(f"{where}: unknown tool {name!r}")
        args: dict[str, Any] = {}
        refs: dict[str, Ref] = {}
        for kw in value.keywords:
            if kw.arg is None:
                raise ProgramError(f"{where}: **kwargs are not allowed")
            if tool is not None and tool.param(kw.arg) is None:
                raise ProgramError(f"{where}: {name} has no parameter {kw.arg!r}")
            ref = _ref(kw.value, bound, where)
            if ref is not None:
                refs[kw.arg] = ref
            else:
                try:
                    args[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    raise ProgramError(f"{where}: argument {kw.arg} must be a literal or an earlier result") from None
        missing = [p.name for p in tool.params if p.required and p.name not in args and p.name not in refs] if tool else []
        if missing:
            raise ProgramError(f"{where}: {name} needs {missing}")
        if target is not None:
            if target == "call":
                raise ProgramError(f"{where}: `call` cannot be rebound")
            bound[target] = len(steps)
        steps.append(Step(tool=name, args=args, refs=refs, name=target))
        if len(steps) > MAX_STEPS:
            raise ProgramError(f"a chain program has at most {MAX_STEPS} calls")
    if not steps:
        raise ProgramError("the program calls no tool")
    return steps


def _ref(node: ast.expr, bound: dict[str, int], where: str) -> Ref | None:
    """``x``, ``x["field"]``, ``x[0]["field"]`` for a name bound by an earlier step; None for anything else."""
    path: list[str | int] = []
    while isinstance(node, ast.Subscript):
        key = node.slice
        if not isinstance(key, ast.Constant) or not isinstance(key.value, str | int) or isinstance(key.value, bool):
            raise ProgramError(f"{where}: subscripts must be literal field names or list indexes")
        path.insert(0, key.value)
        node = node.value
    if isinstance(node, ast.Name):
        if node.id not in bound:
            raise ProgramError(f"{where}: {node.id!r} is not the result of an earlier call")
        return Ref(bound[node.id], path)
    if path:
        raise ProgramError(f"{where}: only results of earlier calls can be subscripted")
    return None


class Unresolved(LookupError):
    """A reference into an earlier result that is not there (an empty list, a missing field)."""

    def __init__(self, param: str, ref: Ref, detail: str) -> None:
        super().__init__(f"{param}: {detail}")
        self.param = param
        self.ref = ref


def resolve(step: Step, results: list[Any]) -> dict[str, Any]:
    """The step's concrete arguments given the earlier steps' results."""
    args = dict(step.args)
    for param, ref in step.refs.items():
        value = results[ref.step]
        for key in ref.path:
            if isinstance(key, int):
                if not isinstance(value, list) or not -len(value) <= key < len(value):
                    raise Unresolved(param, ref, f"step {ref.step} gave no element {key}")
                value = value[key]
            else:
                if not isinstance(value, dict) or key not in value:
                    raise Unresolved(param, ref, f"step {ref.step}'s result has no field {key!r}")
                value = value[key]
        args[param] = value
    return args


def render(steps: list[Step]) -> str:
    """A program's source (each result bound to a name when a later step uses it)."""
    used = {r.step for s in steps for r in s.refs.values()}
    names = {i: (s.name or f"r{i}") for i, s in enumerate(steps) if i in used}
    lines = []
    for i, s in enumerate(steps):
        parts = [repr(s.tool)]
        for p, v in s.args.items():
            parts.append(f"{p}={v!r}")
        for p, r in s.refs.items():
            parts.append(f"{p}={names[r.step]}" + "".join(f"[{k!r}]" for k in r.path))
        call = f"call({', '.join(parts)})"
        lines.append(f"{names[i]} = {call}" if i in names else call)
    return "\n".join(lines) + "\n"
