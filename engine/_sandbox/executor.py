"""Worker-side execution of tool calls: sessions, argument checks, the soft
timeout alarm, error classification, delta computation, integrity checks and rollback."""

from __future__ import annotations

import functools

import linecache
import signal
import traceback
from types import FrameType, TracebackType
from typing import Any

import msgspec

from scaleenv._model.integrity import BeforeState, Constraints, IntegrityIndex, check_delta, describe
from scaleenv._sandbox import stdlib
from scaleenv._sandbox.clock import format_time, from_us
from scaleenv._sandbox.confine import Gate, SandboxViolation
from scaleenv._sandbox.guards import ToolError, tool_globals
from scaleenv._sandbox.jsonval import InvalidValue, check_json
from scaleenv._sandbox.policy import CompiledTool, compile_tool
from scaleenv._sandbox.state import InvalidState, SessionState
from scaleenv._sandbox.types import CallOutcome, DbState, Limits, failure

MAX_MESSAGE = 2000
MAX_TRACEBACK = 8000

_encoder = msgspec.msgpack.Encoder()


class CallTimeout(BaseException):
    """Raised inside tool code by SIGALRM when the call exceeds its budget."""


class _Tool:
    """A loaded tool: its check result and, if accepted, the callable."""

    def __init__(self, compiled: CompiledTool, gate: Gate) -> None:
        self.compiled = compiled
        self.func: Any = None
        self.load_error: str | None = None
        if compiled.code is not None:
            namespace = tool_globals(compiled.name)
            try:
                with gate.loading():
                    # Restricted code: imports of the allowed modules, constants made from
                    # literals (a compiled pattern, a Decimal) and the function definition.
                    exec(compiled.code, namespace)
                self.func = namespace[compiled.name]
            except (Exception, RecursionError, MemoryError) as exc:  # noqa: BLE001 - a bad constant fails the tool's calls
                self.load_error = f"{type(exc).__name__}: {_safe_str(exc)}"


@functools.lru_cache(maxsize=512)
def _compile_cached(source: str, name: str) -> CompiledTool:
    """Compile each (source, name) once per worker: every episode of a domain opens a
    session with the same tools, and RestrictedPython's compile dominated session cost.
    The code object is immutable; each session still runs it in a fresh namespace."""
    return compile_tool(source, name)


class Session:
    """A resident session: its tools, its state and the constraints it enforces."""

    def __init__(self, tools: dict[str, str], state: DbState, gate: Gate, constraints: Constraints | None = None) -> None:
        self.state = SessionState(state)
        self.integrity = IntegrityIndex(constraints) if constraints is not None else None
        self.tools: dict[str, _Tool] = {}
        for name, source in sorted(tools.items()):
            with gate.loading():
                compiled = _compile_cached(source, name)
            filename = compiled.filename
            lines = source.splitlines(keepends=True)
            linecache.cache[filename] = (len(source), None, lines, filename)
            self.tools[name] = _Tool(compiled, gate)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def _safe_str(exc: BaseException) -> str:
    try:
        return _clip(str(exc), MAX_MESSAGE)
    except Exception:  # noqa: BLE001 - a hostile __str__ must not break the worker
        return f"<unprintable {type(exc).__name__}>"


def _tool_traceback(exc: BaseException, filename: str, gate: Gate) -> str:
    """Traceback of `exc` limited to frames of the tool's source file."""
    with gate.trusted():
        frames: list[tuple[FrameType, int]] = []
        tb: TracebackType | None = exc.__traceback__
        for frame, lineno in traceback.walk_tb(tb):
            if frame.f_code.co_filename == filename:
                frames.append((frame, lineno))
        summary = traceback.StackSummary.extract(iter(frames), capture_locals=False)
        text = "Traceback (most recent call last):\n" + "".join(summary.format())
    return _clip(text + f"{type(exc).__name__}: {_safe_str(exc)}\n", MAX_TRACEBACK)


_armed = [False]


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _armed[0]:
        _armed[0] = False
        raise CallTimeout()


def install_alarm() -> None:
    """Install the SIGALRM handler used for the soft per-call timeout."""
    signal.signal(signal.SIGALRM, _on_alarm)


def _check_args(tool: _Tool, args: Any) -> str | None:
    if type(args) is not dict:
        return "args must be a dict of keyword arguments"
    compiled = tool.compiled
    unknown = sorted(k for k in args if k not in compiled.params)
    if unknown and not compiled.varkw:
        return f"unknown parameter(s) for {compiled.name}: {', '.join(unknown)}"
    missing = [p for p in compiled.required if p not in args]
    if missing:
        return f"missing required parameter(s) for {compiled.name}: {', '.join(missing)}"
    try:
        check_json(args, "args")
    except InvalidValue as exc:
        return str(exc)
    return None


def run_call(session: Session, tool_name: str, args: Any, limits: Limits, gate: Gate, now_us: int = 0) -> CallOutcome:
    """Execute one call at clock reading ``now_us``; on any failure (integrity included)
    the session state is rolled back. The outcome carries the reading if the tool read it."""
    stdlib.start_call(now_us)
    outcome = _run_call(session, tool_name, args, limits, gate)
    if stdlib.clock_read():
        outcome = msgspec.structs.replace(outcome, clock=format_time(from_us(now_us)))
    return outcome


def _run_call(session: Session, tool_name: str, args: Any, limits: Limits, gate: Gate) -> CallOutcome:
    tool = session.tools.get(tool_name)
    if tool is None:
        return failure("bad_args", f"unknown tool {tool_name!r}")
    if tool.load_error is not None:
        return failure("exception", f"{tool_name} could not be loaded: {tool.load_error}", type="LoadError")
    if tool.func is None:
        issues = tool.compiled.issues
        return failure("policy", f"{tool_name} was rejected by the sandbox policy: {issues[0].message}", issues=issues)
    problem = _check_args(tool, args)
    if problem is not None:
        return failure("bad_args", problem)
    outcome = _execute(session, tool, args, limits, gate)
    if not outcome.ok:
        session.state.rollback()
    return outcome


LOST_ERROR = "returned NULL without setting an exception"
"""CPython's SystemError text when a C function fails without an exception set: in a worker
under its memory limit, the sign that memory ran out where no MemoryError could be made."""


def _execute(session: Session, tool: _Tool, args: dict[str, Any], limits: Limits, gate: Gate) -> CallOutcome:
    gate.violations.clear()
    name = tool.compiled.name
    try:
        try:
            _armed[0] = True
            signal.setitimer(signal.ITIMER_REAL, limits.timeout_s)
            result = tool.func(session.state.db, **args)
        finally:
            _armed[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except CallTimeout:
        return failure("timeout", f"{name} exceeded its {limits.timeout_s:g} s time limit")
    except MemoryError:
        return failure("memory", f"{name} exceeded the {limits.memory_bytes // (1024 * 1024)} MiB memory limit")
    except SandboxViolation as exc:
        return failure("policy", f"{name} attempted a blocked operation: {_safe_str(exc)}")
    except ToolError as exc:
        if gate.violations:
            return failure("policy", f"{name} attempted a blocked operation: {gate.violations[0]}")
        return failure("tool_error", _safe_str(exc), type="ToolError")
    except RecursionError as exc:
        return failure("exception", _safe_str(exc), type="RecursionError", traceback=_short_tb(exc, tool, gate))
    except SystemError as exc:
        if gate.violations:
            return failure("policy", f"{name} attempted a blocked operation: {gate.violations[0]}")
        if LOST_ERROR in str(exc):
            # A C function gave up without an exception: under the worker's address-space
            # limit, allocating the MemoryError (or running the time limit's handler) failed.
            return failure("memory", f"{name} exhausted the {limits.memory_bytes // (1024 * 1024)} MiB memory limit "
                           f"(the interpreter reported: {_safe_str(exc)})")
        return failure("exception", _safe_str(exc), type="SystemError", traceback=_short_tb(exc, tool, gate))
    except Exception as exc:  # noqa: BLE001 - any other exception is a tool bug, reported
        if gate.violations:
            return failure("policy", f"{name} attempted a blocked operation: {gate.violations[0]}")
        return failure(
            "exception", _safe_str(exc), type=type(exc).__name__, traceback=_tool_traceback(exc, tool.compiled.filename, gate)
        )
    if gate.violations:
        return failure("policy", f"{name} attempted a blocked operation: {gate.violations[0]}")
    return _finish(session, name, result, limits)


def _short_tb(exc: BaseException, tool: _Tool, gate: Gate) -> str:
    text = _tool_traceback(exc, tool.compiled.filename, gate)
    lines = text.splitlines(keepends=True)
    if len(lines) > 12:
        lines = lines[:5] + [f"  ... {len(lines) - 10} more lines ...\n"] + lines[-5:]
    return "".join(lines)


def _finish(session: Session, name: str, result: Any, limits: Limits) -> CallOutcome:
    try:
        check_json(result, "result")
    except InvalidValue as exc:
        return failure("exception", f"{name} returned a non-JSON value: {exc}", type="InvalidResult")
    try:
        size = len(_encoder.encode(result))
    except (TypeError, ValueError, OverflowError) as exc:
        return failure("exception", f"{name} returned an unencodable value: {exc}", type="InvalidResult")
    if size > limits.max_result_bytes:
        return failure("output_too_large", f"{name} returned {size} bytes (limit {limits.max_result_bytes})")
    try:
        delta = session.state.changes()
    except InvalidState as exc:
        return failure("exception", f"{name} left the database invalid: {exc}", type="InvalidState")
    delta_size = len(_encoder.encode(delta))
    if delta_size > limits.max_delta_bytes:
        return failure("output_too_large", f"{name} changed {delta_size} bytes of state (limit {limits.max_delta_bytes})")
    integrity = session.integrity
    if integrity is not None and delta:
        try:
            broken = check_delta(BeforeState(session.state.db, delta), delta, integrity.constraints, integrity)
        except Exception as exc:  # noqa: BLE001 - a checker bug fails the call, never the worker
            return failure("integrity", f"the integrity check of {name} failed: {type(exc).__name__}: {_safe_str(exc)}")
        if broken:
            return failure("integrity", f"{name} broke {len(broken)} integrity constraint{'s' if len(broken) > 1 else ''}: "
                           f"{describe(broken)}", violations=[v.message for v in broken[:100]])
    session.state.commit(delta)
    if integrity is not None:
        integrity.commit(delta)
    return CallOutcome(ok=True, result=result, delta=delta)
