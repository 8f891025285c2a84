"""Check-time policy for synthesized tool source: `check_source` and `compile_tool`.

The core of the policy is RestrictedPython's `compile_restricted_exec`: it is the
well-kept, standard choice for running a Python subset, and its policy works on the
AST (names and attributes starting with `_`, frame/generator introspection
attributes, exec/eval calls), rewriting attribute, item, iteration and in-place
operations into calls to guard functions that we provide at run time
(`scaleenv._sandbox.guards`). On top of it we add our own AST checks for what a
tool may be: exactly one top-level function with a `db` parameter, imports of the
allowed standard modules only (``scaleenv._sandbox.stdlib``: math, re, json, datetime,
time, decimal, string, itertools, collections, statistics, copy; ``from m import n``
only of the names tools may use), no classes, generators, async, `with`, bare
`except`, forbidden builtin names (open, eval, getattr, type, ...), and no
`str.format` (use f-strings).

This module only parses and compiles; it never executes tool code.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import msgspec
from RestrictedPython import RestrictingNodeTransformer, compile_restricted_exec
from RestrictedPython.transformer import IOPERATOR_TO_STR, copy_locations

from scaleenv._sandbox.stdlib import EXPORTS, MODULES
from scaleenv._sandbox.types import CodeIssue

FORBIDDEN_NAMES = frozenset(
    {
        "open", "eval", "exec", "compile", "getattr", "setattr", "delattr", "hasattr",
        "globals", "locals", "vars", "type", "dir", "__import__", "__builtins__",
        "input", "print", "breakpoint", "help", "exit", "quit", "id", "hash",
        "object", "super", "memoryview", "bytearray", "bytes", "classmethod",
        "staticmethod", "property", "iter", "next", "aiter", "anext", "callable",
        "issubclass", "BaseException", "SystemExit", "KeyboardInterrupt",
        "GeneratorExit", "copyright", "credits", "license", "format", "repr",
    }
)
"""Names a tool may never mention (builtins that reach outside the data model)."""

FORBIDDEN_ATTRIBUTES = frozenset({"format", "format_map", "mro", "gi_frame", "f_back"})
"""Attribute names rejected at check time (format: attribute-walking templates)."""

_FORBIDDEN_NODES: dict[type[ast.AST], str] = {
    ast.ClassDef: "class definitions are not allowed in tools",
    ast.AsyncFunctionDef: "async functions are not allowed in tools",
    ast.Await: "await is not allowed in tools",
    ast.AsyncFor: "async for is not allowed in tools",
    ast.AsyncWith: "async with is not allowed in tools",
    ast.With: "with statements are not allowed in tools",
    ast.Yield: "generators (yield) are not allowed in tools",
    ast.YieldFrom: "generators (yield from) are not allowed in tools",
    ast.Global: "global statements are not allowed in tools",
}

_LINE_PREFIX = re.compile(r"^Line (\d+): ")


class CompiledTool(msgspec.Struct, frozen=True):
    """A checked tool: its code object (None if rejected) and call signature."""

    name: str
    filename: str
    issues: list[CodeIssue]
    code: Any = None
    params: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    varkw: bool = False


class _ToolTransformer(RestrictingNodeTransformer):
    """RestrictedPython's policy plus `x[k] += v` (rewritten via guarded getitem/write).

    RestrictedPython rejects augmented assignment to items outright; tools over
    dict records need it constantly (`db["stock"][sku]["qty"] -= n`), so we
    rewrite it into temporaries and the same `_getitem_`/`_write_`/`_inplacevar_`
    guards RestrictedPython uses elsewhere.
    """

    positions: list[tuple[int, int]]

    def error(self, node: ast.AST, info: str) -> None:
        """Record the error (RestrictedPython's exact text) and its column."""
        super().error(node, info)
        self.positions.append((getattr(node, "lineno", 0) or 0, getattr(node, "col_offset", 0) or 0))

    def visit_FormattedValue(self, node: ast.FormattedValue) -> Any:
        """``f"{x}"`` -> ``f"{_format_value_(x)}"``: no text from objects with addresses."""
        node = self.node_contents_visit(node)
        call = ast.Call(func=ast.Name(id="_format_value_", ctx=ast.Load()), args=[node.value], keywords=[])
        copy_locations(call, node.value)
        ast.fix_missing_locations(call)
        node.value = call
        return node

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        """``a % b`` -> ``_mod_(a, b)`` (printf-style formatting is checked like str())."""
        node = super().visit_BinOp(node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            call = ast.Call(func=ast.Name(id="_mod_", ctx=ast.Load()), args=[node.left, node.right], keywords=[])
            copy_locations(call, node)
            ast.fix_missing_locations(call)
            return call
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        """Rewrite `a[k] op= v` into guarded temporaries; defer the rest to RestrictedPython."""
        if not isinstance(node.target, ast.Subscript):
            return super().visit_AugAssign(node)
        target = node.target
        obj = self.visit(target.value)
        key = self.visit(target.slice)
        value = self.visit(node.value)
        obj_name, key_name = self.gen_tmp_name(), self.gen_tmp_name()

        def name(ident: str, ctx: ast.expr_context) -> ast.Name:
            return ast.Name(id=ident, ctx=ctx)

        new_value = ast.Call(
            func=name("_inplacevar_", ast.Load()),
            args=[
                ast.Constant(IOPERATOR_TO_STR[type(node.op)]),
                ast.Call(
                    func=name("_getitem_", ast.Load()),
                    args=[name(obj_name, ast.Load()), name(key_name, ast.Load())],
                    keywords=[],
                ),
                value,
            ],
            keywords=[],
        )
        store = ast.Subscript(
            value=ast.Call(func=name("_write_", ast.Load()), args=[name(obj_name, ast.Load())], keywords=[]),
            slice=name(key_name, ast.Load()),
            ctx=ast.Store(),
        )
        stmts: list[ast.stmt] = [
            ast.Assign(targets=[name(obj_name, ast.Store())], value=obj),
            ast.Assign(targets=[name(key_name, ast.Store())], value=key),
            ast.Assign(targets=[store], value=new_value),
        ]
        for stmt in stmts:
            copy_locations(stmt, node)
            ast.fix_missing_locations(stmt)
            for sub in ast.walk(stmt):
                if not hasattr(sub, "lineno") and isinstance(sub, (ast.expr, ast.stmt)):
                    copy_locations(sub, node)
        return stmts


def tool_filename(tool_name: str) -> str:
    """The pseudo file name tracebacks show for a tool's source."""
    return f"<tool:{tool_name}>"


def _is_immutable_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Tuple):
        return all(_is_immutable_literal(e) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return isinstance(node.operand, ast.Constant)
    return False


def _issue(node: ast.AST, message: str) -> CodeIssue:
    return CodeIssue(getattr(node, "lineno", 0) or 0, getattr(node, "col_offset", 0) or 0, message)


_PURE_CONSTRUCTORS = frozenset({
    ("re", "compile"), ("decimal", "Decimal"), ("datetime", "date"), ("datetime", "datetime"), ("datetime", "time"),
    ("datetime", "timedelta"), ("datetime", "timezone"), ("builtins", "frozenset"), ("builtins", "tuple"),
})
"""Calls a top-level constant may be made with: immutable values, cheap to build from literals."""

MAX_TOPLEVEL_LITERAL = 10_000
"""The longest string a top-level constant may be built from (a pattern, a number)."""


def _toplevel_bindings(tree: ast.Module) -> dict[str, tuple[str, str | None]]:
    """Names the top level imports: name -> (module, None) or (module, name in it)."""
    out: dict[str, tuple[str, str | None]] = {"frozenset": ("builtins", "frozenset"), "tuple": ("builtins", "tuple")}
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                out[alias.asname or alias.name] = (alias.name, None)
        elif isinstance(stmt, ast.ImportFrom) and not stmt.level and stmt.module:
            for alias in stmt.names:
                out[alias.asname or alias.name] = (stmt.module, alias.name)
    return out


def _resolve(node: ast.expr, bindings: dict[str, tuple[str, str | None]]) -> tuple[str, str] | None:
    """``m.name`` or ``name`` (imported from m) as (module, name), when it is one."""
    if isinstance(node, ast.Name):
        bound = bindings.get(node.id)
        return (bound[0], bound[1]) if bound is not None and bound[1] is not None else None
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        bound = bindings.get(node.value.id)
        if bound is not None and bound[1] is None:
            return bound[0], node.attr
    return None


def _is_constant_value(node: ast.expr, bindings: dict[str, tuple[str, str | None]], depth: int = 0) -> bool:
    """A top-level constant: literals, and immutable values built from them by a pure
    constructor (``re.compile(r"...", re.I)``, ``Decimal("0.075")``, ``timedelta(days=1)``,
    ``frozenset({"a", "b"})``), with module constants (``re.IGNORECASE``,
    ``decimal.ROUND_HALF_UP``) as values or arguments. Lists and sets only as arguments
    (``depth`` > 0): a top-level list would be state shared by every call."""
    if depth > 8:
        return False
    if isinstance(node, ast.Constant):
        return not isinstance(node.value, str | bytes) or len(node.value) <= MAX_TOPLEVEL_LITERAL
    if isinstance(node, ast.Tuple) or (depth and isinstance(node, ast.List | ast.Set)):
        return len(node.elts) <= 1000 and all(_is_constant_value(e, bindings, depth + 1) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, int | float)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # flags: re.I | re.M
        return _is_constant_value(node.left, bindings, depth + 1) and _is_constant_value(node.right, bindings, depth + 1)
    if isinstance(node, ast.Attribute | ast.Name):
        target = _resolve(node, bindings)
        module = MODULES.get(target[0]) if target else None
        if target is not None and module is not None and target[1] in EXPORTS[target[0]]:
            return not callable(module.export(target[1]))  # a module constant (re.I), not a function
        return False
    if isinstance(node, ast.Call):
        target = _resolve(node.func, bindings)
        if target not in _PURE_CONSTRUCTORS:
            return False
        return all(_is_constant_value(a, bindings, depth + 1) for a in node.args) and all(
            k.arg is not None and _is_constant_value(k.value, bindings, depth + 1) for k in node.keywords)
    return False


def _check_toplevel(tree: ast.Module, tool_name: str) -> tuple[list[CodeIssue], ast.FunctionDef | None]:
    issues: list[CodeIssue] = []
    bindings = _toplevel_bindings(tree)
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for i, stmt in enumerate(tree.body):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # module docstring
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            continue  # which modules and names: checked with the other nodes
        if (
            isinstance(stmt, ast.Assign)
            and all(isinstance(t, ast.Name) for t in stmt.targets)
            and (_is_immutable_literal(stmt.value) or _is_constant_value(stmt.value, bindings))
        ):
            continue
        issues.append(
            _issue(
                stmt,
                "only the tool function, a docstring, imports and constants are allowed at top level "
                "(literals, tuples, and values made from literals by re.compile, decimal.Decimal, "
                "datetime's date/datetime/time/timedelta/timezone or frozenset)",
            )
        )
    if len(functions) != 1 or functions[0].name != tool_name or not isinstance(functions[0], ast.FunctionDef):
        node = functions[0] if functions else tree
        issues.append(_issue(node, f"must define exactly one top-level function named {tool_name}"))
        return issues, None
    fn = functions[0]
    args = fn.args
    if fn.decorator_list:
        issues.append(_issue(fn, "decorators are not allowed on tools"))
    if args.posonlyargs:
        issues.append(_issue(fn, "positional-only parameters are not allowed"))
    if not args.args:
        issues.append(_issue(fn, f"{tool_name} must take the database as its first parameter (db)"))
    if args.vararg is not None:
        issues.append(_issue(fn, "*args is not allowed; tool parameters are keyword parameters"))
    for default in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
        if not _is_immutable_literal(default):
            issues.append(_issue(default, "parameter defaults must be immutable constants (str/int/float/bool/None/tuple)"))
    return issues, fn


_ALLOWED_MODULES = ", ".join(sorted(EXPORTS))


def _import_issues(node: ast.Import | ast.ImportFrom) -> list[CodeIssue]:
    """An import names an allowed module, and a from-import only names tools may use."""
    if isinstance(node, ast.Import):
        return [_issue(node, f"module '{alias.name}' is not available in tools (allowed: {_ALLOWED_MODULES})")
                for alias in node.names if alias.name not in EXPORTS]
    if node.level:
        return [_issue(node, "relative imports are not allowed in tools")]
    module = node.module or ""
    exports = EXPORTS.get(module)
    if exports is None:
        return [_issue(node, f"module '{module}' is not available in tools (allowed: {_ALLOWED_MODULES})")]
    return [_issue(node, f"'{alias.name}' of module '{module}' is not available in tools")
            for alias in node.names if alias.name != "*" and alias.name not in exports]


def _module_attribute_issues(tree: ast.Module) -> list[CodeIssue]:
    """``m.name`` where ``m`` is an imported allowed module (and nothing else) and ``name``
    is not one tools may use: caught here instead of at run time."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in EXPORTS and "." not in alias.name:
                    aliases[alias.asname or alias.name] = alias.name
    if not aliases:
        return []
    rebound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            rebound.add(node.id)
        elif isinstance(node, ast.arg):
            rebound.add(node.arg)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            rebound.update(a.asname or a.name for a in node.names if isinstance(node, ast.ImportFrom))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            rebound.add(node.name)
    issues = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            if module is not None and node.value.id not in rebound and node.attr not in EXPORTS[module] \
                    and not node.attr.startswith("_"):
                issues.append(_issue(node, f"module '{module}' has no attribute '{node.attr}' available in tools"))
    return issues


def _check_nodes(tree: ast.Module) -> list[CodeIssue]:
    issues: list[CodeIssue] = []
    for node in ast.walk(tree):
        message = _FORBIDDEN_NODES.get(type(node))
        if isinstance(node, ast.Import | ast.ImportFrom):
            issues += _import_issues(node)
        elif message is not None:
            issues.append(_issue(node, message))
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            issues.append(_issue(node, f"name '{node.id}' is not allowed in tools"))
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            issues.append(_issue(node, f"attribute '.{node.attr}' is not allowed in tools (use f-strings)"))
        elif isinstance(node, ast.ExceptHandler) and node.type is None:
            issues.append(_issue(node, "bare 'except:' is not allowed; catch ToolError or specific exceptions"))
        elif isinstance(node, ast.arg) and node.arg in FORBIDDEN_NAMES:
            issues.append(_issue(node, f"name '{node.arg}' is not allowed in tools"))
    return issues


def _restricted(source: str, filename: str) -> tuple[Any, list[CodeIssue]]:
    positions: list[tuple[int, int]] = []
    policy = type("_BoundToolTransformer", (_ToolTransformer,), {"positions": positions})
    result = compile_restricted_exec(source, filename=filename, policy=policy)
    issues: list[CodeIssue] = []
    for index, message in enumerate(result.errors):
        if index < len(positions):
            line, col = positions[index]
        else:
            match = _LINE_PREFIX.match(message)
            line, col = (int(match.group(1)) if match else 0), 0
        issues.append(CodeIssue(line, col, message))
    return result.code, issues


def compile_tool(source: str, tool_name: str) -> CompiledTool:
    """Check `source` and, if it passes, compile it with RestrictedPython."""
    filename = tool_filename(tool_name)
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        message = f"SyntaxError: {exc.msg}"
        return CompiledTool(tool_name, filename, [CodeIssue(exc.lineno or 0, max((exc.offset or 1) - 1, 0), message)])
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return CompiledTool(tool_name, filename, [CodeIssue(0, 0, f"{type(exc).__name__}: {exc}")])
    issues, fn = _check_toplevel(tree, tool_name)
    issues += _check_nodes(tree)
    issues += _module_attribute_issues(tree)
    try:
        code, rp_issues = _restricted(source, filename)
    except (RecursionError, MemoryError) as exc:
        code, rp_issues = None, [CodeIssue(0, 0, f"{type(exc).__name__}: {exc}")]
    seen = {(i.line, i.message) for i in issues}
    issues += [i for i in rp_issues if (i.line, i.message) not in seen]
    issues.sort(key=lambda i: (i.line, i.col, i.message))
    if issues or fn is None or code is None:
        return CompiledTool(tool_name, filename, issues or [CodeIssue(0, 0, "could not compile")])
    params = tuple(a.arg for a in fn.args.args[1:]) + tuple(a.arg for a in fn.args.kwonlyargs)
    n_req_pos = len(fn.args.args) - 1 - len(fn.args.defaults)
    required = tuple(a.arg for a in fn.args.args[1 : 1 + n_req_pos]) + tuple(
        a.arg for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is None
    )
    return CompiledTool(
        tool_name, filename, [], code=code, params=params, required=required, varkw=fn.args.kwarg is not None
    )


def check_source(source: str, tool_name: str) -> list[CodeIssue]:
    """Return every issue in `source` as a tool named `tool_name` (empty = acceptable).

    Pure and in-process: parses and compiles, never executes.
    """
    return compile_tool(source, tool_name).issues
