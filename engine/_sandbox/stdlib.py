"""The standard modules tool code may import, and the clock behind their time functions.

Tools may ``import`` (at top level or inside the function, ``as`` names included) or
``from ... import`` these modules, and nothing else:

``math``, ``re``, ``json``, ``datetime``, ``time``, ``decimal``, ``string``,
``itertools``, ``collections``, ``statistics``, ``copy``.

What a tool gets is not the module but a read-only facade holding an allow-list of
its names (:data:`EXPORTS`): pure functions, value types and constants. Left out on
purpose: what reads the host (``time.sleep``, ``time.process_time``, ``time.ctime``),
what is not deterministic (``statistics.NormalDist``, which samples with ``random``),
what reaches code or internals (``string.Formatter`` and ``Template``, which walk
attributes from text; ``collections.namedtuple``, which compiles code; ``re.DEBUG``,
``re.purge``, ``decimal.getcontext``/``setcontext``/``localcontext`` and the shared
module contexts, ``json``'s encoder and decoder classes), and the abstract bases.

Attributes of the objects these modules make are allowed by type (:func:`attribute`):
the public names of each value type (datetimes, decimals, patterns and matches,
counters, deques, ...), nothing on any other object. ``json.dumps``/``loads`` take only
their data options (no ``cls``); ``copy.copy``/``deepcopy`` copy data values only.

The time: ``datetime.datetime.now()`` / ``today()`` / ``utcnow()``,
``datetime.date.today()`` and ``time.time()`` (``time_ns``, ``monotonic``,
``perf_counter``, and ``gmtime``/``localtime``/``strftime`` without a time) read the
session's clock (``scaleenv._sandbox.clock``), which the pool sets before each call
(:func:`start_call`); whether the call read it is :func:`clock_read`. Every read within
one call gives the same reading. The worker runs in UTC (``TZ=UTC``), so local time,
``astimezone()`` and ``timestamp()`` of naive datetimes are the same on every host.

Each call still runs under the sandbox's limits: a catastrophic regex or a huge
``math.factorial`` runs into the per-call timeout (the watchdog kills what SIGALRM
cannot interrupt), ``json.dumps`` of a huge structure into the result or memory
limit, a ``decimal.Context`` with absurd precision into the memory limit.
"""

from __future__ import annotations

import collections as _collections
import copy as _copy
import datetime as _dt
import decimal as _decimal
import itertools as _itertools
import json as _json
import math as _math
import re as _re
import statistics as _statistics
import string as _string
import sys
import time as _time
from collections.abc import Callable
from typing import Any

from scaleenv._sandbox.clock import from_us

# Modules the allowed ones load lazily on first use: imported here, before the worker's
# lockdown refuses imports (re: \N{...} escapes; strptime; Counter.most_common).
import _strptime  # noqa: F401
import calendar  # noqa: F401
import heapq  # noqa: F401
import locale  # noqa: F401
import unicodedata  # noqa: F401


# ---- the clock ------------------------------------------------------------------------


class _Clock:
    """The current call's reading (microseconds since 1970, naive UTC) and whether it was read."""

    __slots__ = ("us", "read")

    def __init__(self) -> None:
        self.us = 0
        self.read = False


_clock = _Clock()


def start_call(now_us: int) -> None:
    """Before a call: set the reading it sees, reset per-call module state."""
    _clock.us = now_us
    _clock.read = False
    _decimal.setcontext(_decimal.Context())  # the default context, whatever an earlier call did


def clock_read() -> bool:
    """Whether the call since :func:`start_call` read the clock."""
    return _clock.read


def _now() -> _dt.datetime:
    _clock.read = True
    return from_us(_clock.us)


def _seconds() -> float:
    _clock.read = True
    return _clock.us / 1_000_000


def datetime_now(tz: Any = None) -> _dt.datetime:
    """``datetime.datetime.now([tz])`` on the session clock (naive local time is UTC)."""
    now = _now()
    if tz is None:
        return now
    if not isinstance(tz, _dt.tzinfo):
        raise TypeError(f"tzinfo argument must be None or of a tzinfo subclass, not {type(tz).__name__}")
    return now.replace(tzinfo=_dt.timezone.utc).astimezone(tz)


def datetime_utcnow() -> _dt.datetime:
    """``datetime.datetime.utcnow()`` on the session clock."""
    return _now()


def datetime_today() -> _dt.datetime:
    """``datetime.datetime.today()`` on the session clock."""
    return _now()


def date_today() -> _dt.date:
    """``datetime.date.today()`` on the session clock."""
    return _now().date()


def time_time() -> float:
    """``time.time()`` on the session clock."""
    return _seconds()


def time_time_ns() -> int:
    """``time.time_ns()`` on the session clock."""
    _clock.read = True
    return _clock.us * 1000


def time_gmtime(secs: Any = None) -> _time.struct_time:
    """``time.gmtime([secs])``: the session clock without an argument."""
    return _time.gmtime(_seconds() if secs is None else secs)


def time_localtime(secs: Any = None) -> _time.struct_time:
    """``time.localtime([secs])`` (UTC in the sandbox): the session clock without an argument."""
    return _time.localtime(_seconds() if secs is None else secs)


def time_strftime(fmt: str, t: Any = None) -> str:
    """``time.strftime(fmt[, t])``: the session clock without ``t``."""
    return _time.strftime(fmt, time_localtime() if t is None else t)


CLOCK_ATTRIBUTES: dict[tuple[type, str], Callable[..., Any]] = {
    (_dt.datetime, "now"): datetime_now,
    (_dt.datetime, "utcnow"): datetime_utcnow,
    (_dt.datetime, "today"): datetime_today,
    (_dt.date, "today"): date_today,
}
"""The class methods that would read the host's clock, and what tools get instead."""


# ---- json and copy, data only -----------------------------------------------------------


def json_dumps(obj: Any, *, skipkeys: bool = False, ensure_ascii: bool = True, allow_nan: bool = True,
               indent: Any = None, separators: Any = None, default: Any = None, sort_keys: bool = False) -> str:
    """``json.dumps`` with its data options (no ``cls``)."""
    return _json.dumps(obj, skipkeys=skipkeys, ensure_ascii=ensure_ascii, allow_nan=allow_nan, indent=indent,
                       separators=separators, default=default, sort_keys=sort_keys)


def json_loads(s: Any, *, object_hook: Any = None, parse_float: Any = None, parse_int: Any = None,
               parse_constant: Any = None, object_pairs_hook: Any = None) -> Any:
    """``json.loads`` with its data options (no ``cls``)."""
    return _json.loads(s, object_hook=object_hook, parse_float=parse_float, parse_int=parse_int,
                       parse_constant=parse_constant, object_pairs_hook=object_pairs_hook)


_VALUE_TYPES = frozenset({str, int, float, bool, type(None), _decimal.Decimal, _dt.date, _dt.datetime, _dt.time,
                          _dt.timedelta, _dt.timezone})
_CONTAINER_TYPES = frozenset({dict, list, tuple, set, frozenset, _collections.Counter, _collections.OrderedDict,
                              _collections.defaultdict, _collections.deque})


def _copyable(value: Any, deep: bool) -> None:
    """Raise TypeError unless ``value`` is data (deep: all the way down)."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _VALUE_TYPES:
            continue
        if kind not in _CONTAINER_TYPES:
            raise TypeError(f"copy of a {kind.__name__} object is not supported in tools (only data values)")
        if not deep or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        else:
            stack.extend(item)


def copy_copy(value: Any) -> Any:
    """``copy.copy`` of a data value."""
    _copyable(value, deep=False)
    return _copy.copy(value)


def copy_deepcopy(value: Any) -> Any:
    """``copy.deepcopy`` of a data value."""
    _copyable(value, deep=True)
    return _copy.deepcopy(value)


# ---- the facades ------------------------------------------------------------------------


class ToolModule:
    """A read-only module facade: an allow-list of names of one standard module."""

    __slots__ = ("_name", "_names")

    def __init__(self, name: str, names: dict[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_names", dict(names))

    def export(self, name: str) -> Any:
        """The exported value of ``name``; AttributeError naming the module otherwise."""
        try:
            return self._names[name]
        except KeyError:
            raise AttributeError(f"module {self._name!r} has no attribute {name!r} available in tools") from None

    def __getattr__(self, name: str) -> Any:  # `from m import name` looks names up with getattr
        return self.export(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"module {self._name!r} is read-only in tools")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"module {self._name!r} is read-only in tools")

    def __repr__(self) -> str:
        return f"<module {self._name!r} (tool facade)>"


def _pick(module: Any, names: str, **overrides: Any) -> dict[str, Any]:
    out = {n: getattr(module, n) for n in names.split()}
    out.update(overrides)
    return out


_RE_FLAGS = "A ASCII I IGNORECASE M MULTILINE S DOTALL X VERBOSE U UNICODE NOFLAG"

_MODULES: dict[str, dict[str, Any]] = {
    "math": {n: getattr(_math, n) for n in dir(_math) if not n.startswith("_")},
    "re": _pick(_re, "compile search match fullmatch split findall finditer sub subn escape error Pattern Match "
                + _RE_FLAGS),
    "json": {"dumps": json_dumps, "loads": json_loads, "JSONDecodeError": _json.JSONDecodeError},
    "datetime": _pick(_dt, "datetime date time timedelta timezone MINYEAR MAXYEAR", UTC=_dt.timezone.utc),
    "time": {"time": time_time, "time_ns": time_time_ns, "monotonic": time_time, "monotonic_ns": time_time_ns,
             "perf_counter": time_time, "perf_counter_ns": time_time_ns, "gmtime": time_gmtime,
             "localtime": time_localtime, "strftime": time_strftime, "strptime": _time.strptime,
             "mktime": _time.mktime, "struct_time": _time.struct_time},
    "decimal": _pick(_decimal, "Decimal Context DecimalException InvalidOperation DivisionByZero Overflow Underflow "
                     "Inexact Rounded Subnormal Clamped FloatOperation ROUND_05UP ROUND_CEILING ROUND_DOWN "
                     "ROUND_FLOOR ROUND_HALF_DOWN ROUND_HALF_EVEN ROUND_HALF_UP ROUND_UP MAX_PREC MAX_EMAX MIN_EMIN"),
    "string": _pick(_string, "ascii_letters ascii_lowercase ascii_uppercase digits hexdigits octdigits printable "
                    "punctuation whitespace capwords"),
    "itertools": {n: getattr(_itertools, n) for n in dir(_itertools) if not n.startswith("_")},
    "collections": _pick(_collections, "Counter OrderedDict defaultdict deque"),
    "statistics": _pick(_statistics, "mean fmean geometric_mean harmonic_mean median median_low median_high "
                        "median_grouped mode multimode quantiles pstdev pvariance stdev variance correlation "
                        "covariance linear_regression StatisticsError"),
    "copy": {"copy": copy_copy, "deepcopy": copy_deepcopy},
}

MODULES: dict[str, ToolModule] = {name: ToolModule(name, names) for name, names in _MODULES.items()}
"""Module name -> the facade a tool's import gets."""

EXPORTS: dict[str, frozenset[str]] = {name: frozenset(names) for name, names in _MODULES.items()}
"""Module name -> the names a tool may use from it (the check-time policy reads this)."""


class ToolImportError(ImportError):
    """An import of a module tools may not use (the check-time policy catches these first)."""


def tool_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    """``__import__`` for tool code: the facade of an allowed module, nothing else.

    Library code a tool calls imports through it too: C code importing a module
    (``datetime.strptime`` imports ``_strptime``) calls the ``__import__`` of the tool's
    builtins for its side effect, then takes the module from ``sys.modules`` itself. Such
    a module is already loaded (the worker imports everything before its lockdown); it gets
    None back, never the module (tool code cannot name ``__import__``, and the check-time
    policy refuses every import statement of a module not allowed)."""
    if level != 0:
        raise ToolImportError("relative imports are not allowed in tools")
    module = MODULES.get(name)
    if module is None:
        if name in sys.modules and not fromlist:
            return None
        raise ToolImportError(f"module {name!r} is not available in tools (allowed: {', '.join(sorted(MODULES))})")
    for item in fromlist or ():
        module.export(item)
    return module


# ---- attributes of what the modules make ---------------------------------------------


def _public(cls: type, deny: str = "") -> frozenset[str]:
    return frozenset(n for n in dir(cls) if not n.startswith("_")) - frozenset(deny.split())


_IsoCalendarDate = type(_dt.date(2024, 1, 1).isocalendar())
_LinearRegression = type(_statistics.linear_regression([1, 2], [1, 2]))
_DecimalTuple = type(_decimal.Decimal(1).as_tuple())

_VALUE_ATTRIBUTES: dict[type, frozenset[str]] = {
    cls: _public(cls, deny) for cls, deny in (
        (_dt.datetime, ""), (_dt.date, ""), (_dt.time, ""), (_dt.timedelta, ""), (_dt.timezone, ""),
        (_IsoCalendarDate, ""), (_time.struct_time, ""),
        (_decimal.Decimal, ""), (_decimal.Context, ""), (_DecimalTuple, ""),
        (_re.Pattern, "scanner"), (_re.Match, ""),
        (_collections.Counter, ""), (_collections.OrderedDict, ""), (_collections.defaultdict, ""),
        (_collections.deque, ""), (_LinearRegression, ""),
    )
}
"""Value types (what the allowed modules make) -> the attribute names tools may use on them
and on the type itself (its constructors and constants)."""

_ERROR_ATTRIBUTES: dict[type, frozenset[str]] = {
    _json.JSONDecodeError: frozenset({"args", "msg", "doc", "pos", "lineno", "colno"}),
    _re.error: frozenset({"args", "msg", "pattern", "pos", "lineno", "colno"}),
}

_CLASS_ONLY_ATTRIBUTES: dict[type, frozenset[str]] = {_itertools.chain: frozenset({"from_iterable"})}

TEXT_VALUE_TYPES = (_decimal.Decimal, _dt.date, _dt.time, _dt.timedelta, _dt.timezone, _re.Pattern, _re.Match)
"""Types from the allowed modules whose text (str, repr, f-strings) is deterministic."""

WRITABLE_TYPES = frozenset({dict, list, _collections.Counter, _collections.OrderedDict, _collections.defaultdict,
                            _collections.deque})
"""Types whose items tool code may assign (``x[k] = v``); they are made within the call."""


def attribute(obj: Any, name: str) -> Any:
    """``obj.name`` for tool code, beyond the plain data types (the caller checked ``name``
    is public): a module facade's export, a value type's public attribute, the session
    clock in place of a host clock reader; AttributeError naming the type otherwise."""
    if type(obj) is ToolModule:
        return obj.export(name)
    owner = obj if isinstance(obj, type) else type(obj)
    allowed = _VALUE_ATTRIBUTES.get(owner)
    if allowed is not None and name in allowed:
        reader = CLOCK_ATTRIBUTES.get((owner, name))
        return reader if reader is not None else getattr(obj, name)
    if owner is obj:
        if name in _CLASS_ONLY_ATTRIBUTES.get(owner, ()):
            return getattr(obj, name)
    elif name in _ERROR_ATTRIBUTES.get(owner, ()):
        return getattr(obj, name)
    raise AttributeError(f"attribute {name!r} of {owner.__name__!r} objects is not available in tools")
