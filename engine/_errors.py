"""Errors the command line turns into a message and an exit status."""

from __future__ import annotations


class UsageError(Exception):
    """Bad usage or input: reported on stderr, exit status 2."""


class WorkFailed(Exception):
    """The work failed or found a problem: reported on stderr, exit status 1."""


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """The leaves of a (possibly nested) exception group, or [exc]."""
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for sub in exc.exceptions:
            out.extend(leaf_exceptions(sub))
        return out
    return [exc]
