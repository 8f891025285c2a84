"""Run-time globals for restricted tool code: the builtins whitelist and the guards.

RestrictedPython rewrites `a.b`, `a[k]`, `for x in it`, `a, b = it`, `x += y`,
`a[k] = v` and `f(*a, **k)` into calls to `_getattr_`, `_getitem_`, `_getiter_`,
`_unpack_sequence_`, `_inplacevar_`, `_write_` and `_apply_`; this module supplies
them. Attribute access is an allow-list by *type*: only methods/attributes of the
plain data types (str, int, float, bool, list, dict, set, tuple, None) and
`.args` of exceptions are reachable, plus what the allowed standard modules offer
(``scaleenv._sandbox.stdlib``: their facades, the public attributes of the values they
make, the session clock behind ``now()``/``today()``).
"""

from __future__ import annotations

import operator
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from scaleenv._sandbox import stdlib


class ToolError(Exception):
    """Raised by a tool to fail cleanly (unknown id, bad state, bad argument)."""


_DATA_TYPES = frozenset({str, int, float, bool, list, dict, set, frozenset, tuple, type(None)})
_DENIED_ATTRIBUTES = frozenset({"format", "format_map", "mro"}) | INSPECT_ATTRIBUTES

_TEXT_SCALARS = (str, int, float, bool, type(None), range, *stdlib.TEXT_VALUE_TYPES)


def is_text_safe(value: Any, depth: int = 0) -> bool:
    """Whether turning ``value`` into text is deterministic: plain data, not objects.

    A function, lambda, generator or iterator object prints its memory address, which
    differs in every process: text built from it would make a tool nondeterministic.
    """
    if isinstance(value, _TEXT_SCALARS) or isinstance(value, BaseException):
        return True
    if depth > 50:
        return False
    if isinstance(value, list | tuple | set | frozenset | deque):
        return all(is_text_safe(v, depth + 1) for v in value)
    if isinstance(value, defaultdict) and not (value.default_factory is None or isinstance(value.default_factory, type)):
        return False  # its text shows the factory: a function's shows its address
    if isinstance(value, dict):
        return all(is_text_safe(k, depth + 1) and is_text_safe(v, depth + 1) for k, v in value.items())
    return False


def _refuse_text(value: Any) -> TypeError:
    return TypeError(f"a {type(value).__name__} object cannot be turned into text in a tool (only data values can)")


class _StrMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, str)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, str)

    def __call__(cls, *args: Any, **kwargs: Any) -> str:
        if args and not is_text_safe(args[0]):
            raise _refuse_text(args[0])
        return str(*args, **kwargs)


class safe_str(metaclass=_StrMeta):  # noqa: N801 - stands in for the builtin `str`
    """``str`` for tool code: converts data values only; ``isinstance(x, str)`` still works."""


def guarded_format_value(value: Any) -> Any:
    """The value of an f-string field, checked like ``str(value)``."""
    if not is_text_safe(value):
        raise _refuse_text(value)
    return value


def guarded_mod(left: Any, right: Any) -> Any:
    """``left % right``: printf-style formatting of data values only."""
    if isinstance(left, str) and not is_text_safe(right):
        raise _refuse_text(right)
    return left % right


SAFE_BUILTINS: dict[str, Any] = {
    "len": len, "range": range, "sorted": sorted, "min": min, "max": max, "sum": sum,
    "abs": abs, "round": round, "str": safe_str, "int": int, "float": float, "bool": bool,
    "list": list, "dict": dict, "set": set, "frozenset": frozenset, "tuple": tuple,
    "enumerate": enumerate, "zip": zip, "any": any, "all": all, "isinstance": isinstance,
    "reversed": reversed, "map": map, "filter": filter, "divmod": divmod, "chr": chr, "ord": ord,
    "None": None, "True": True, "False": False,
    "ToolError": ToolError, "Exception": Exception, "ValueError": ValueError,
    "KeyError": KeyError, "TypeError": TypeError, "IndexError": IndexError,
    "LookupError": LookupError, "ArithmeticError": ArithmeticError,
    "ZeroDivisionError": ZeroDivisionError,
}
"""The only builtins tool code can name (the brief's list plus a few pure helpers)."""


def guarded_getattr(obj: Any, name: str, default: Any = None) -> Any:
    """`obj.name` for tool code: public attributes of plain data types, and what the
    allowed standard modules offer (``stdlib.attribute``)."""
    if type(name) is not str or name.startswith("_") or name in _DENIED_ATTRIBUTES:
        raise AttributeError(f"attribute {name!r} is not allowed in tools")
    if type(obj) in _DATA_TYPES or (isinstance(obj, BaseException) and name == "args"):
        return getattr(obj, name)
    return stdlib.attribute(obj, name)


def guarded_getitem(obj: Any, key: Any) -> Any:
    """`obj[key]` for tool code."""
    return obj[key]


def guarded_getiter(obj: Any) -> Any:
    """Iteration guard: plain iteration (there are no security-proxied objects here)."""
    return obj


def guarded_apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`f(*args, **kwargs)` for tool code."""
    return func(*args, **kwargs)


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow,
    "<<=": operator.ilshift, ">>=": operator.irshift, "&=": operator.iand,
    "|=": operator.ior, "^=": operator.ixor, "@=": operator.imatmul,
}


class _ReadOnly:
    """What ``_write_`` gives for an object tools may not change: every write raises."""

    __slots__ = ("_kind",)

    def __init__(self, obj: Any) -> None:
        object.__setattr__(self, "_kind", "module" if type(obj) is stdlib.ToolModule
                           else f"class {obj.__name__!r}" if isinstance(obj, type) else f"{type(obj).__name__!r} object")

    def _refuse(self, *args: Any) -> None:
        raise TypeError(f"tools may not change a {self._kind} (only the dicts and lists they hold or build)")

    __setattr__ = __delattr__ = __setitem__ = __delitem__ = _refuse


def guarded_write(obj: Any) -> Any:
    """The target of ``obj[k] = v`` / ``obj.a = v`` in tool code: dicts, lists and the
    collections tools build (Counter, deque, ...) take writes; anything else (module
    facades, classes, values the modules make) refuses every write."""
    if type(obj) in stdlib.WRITABLE_TYPES:
        return obj
    return _ReadOnly(obj)


def guarded_inplacevar(op: str, target: Any, value: Any) -> Any:
    """`target op= value` for tool code."""
    return _INPLACE[op](target, value)


_test_clock = False


def enable_test_clock() -> None:
    """TEST ONLY (Limits.test_clock): give tools a nondeterministic ``clock_ns()``."""
    global _test_clock
    _test_clock = True


def tool_globals(tool_name: str) -> dict[str, Any]:
    """Fresh module globals for executing one tool's restricted code object."""
    builtins = dict(SAFE_BUILTINS)
    builtins["__import__"] = stdlib.tool_import  # `import m` of the allowed modules' facades
    if _test_clock:
        import time

        builtins["clock_ns"] = time.monotonic_ns
    return {
        "__builtins__": builtins,
        "__name__": f"tool_{tool_name}",
        "__metaclass__": type,
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_getiter_": guarded_getiter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": guarded_write,
        "_inplacevar_": guarded_inplacevar,
        "_apply_": guarded_apply,
        "_format_value_": guarded_format_value,
        "_mod_": guarded_mod,
    }
