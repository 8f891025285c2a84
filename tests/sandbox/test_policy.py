"""check_source: syntax errors, RestrictedPython messages, our AST rules."""

from __future__ import annotations

from scaleenv._sandbox import CodeIssue, check_source
from tests.sandbox.domain import TOOLS


def test_domain_tools_pass() -> None:
    for name, source in TOOLS.items():
        assert check_source(source, name) == [], name


def test_syntax_error_has_position() -> None:
    issues = check_source("def f(db):\n    return (1 +\n", "f")
    assert len(issues) == 1
    assert issues[0].line == 2 and issues[0].message.startswith("SyntaxError")


def test_restrictedpython_message_is_exact() -> None:
    issues = check_source("def f(db):\n    return db.__class__\n", "f")
    assert CodeIssue(2, 11, '''Line 2: "__class__" is an invalid attribute name because it starts with "_".''') in issues


def test_must_define_the_named_function() -> None:
    for source in ("def g(db):\n    return 1\n", "x = 1\n", "def f(db):\n    return 1\ndef h(db):\n    return 2\n"):
        messages = [i.message for i in check_source(source, "f")]
        assert "must define exactly one top-level function named f" in messages


def test_forbidden_names_and_imports() -> None:
    issues = check_source("import os\ndef f(db):\n    return open('x'), getattr(db, 'k'), type(db)\n", "f")
    messages = {i.message for i in issues}
    assert ("module 'os' is not available in tools (allowed: collections, copy, datetime, decimal, itertools, "
            "json, math, re, statistics, string, time)") in messages
    assert {"name 'open' is not allowed in tools", "name 'getattr' is not allowed in tools", "name 'type' is not allowed in tools"} <= messages


def test_issues_are_sorted_and_deterministic() -> None:
    source = "def f(db):\n    x = eval('1')\n    return db.__dict__\n"
    first = check_source(source, "f")
    assert first == check_source(source, "f")
    assert first == sorted(first, key=lambda i: (i.line, i.col, i.message))


def test_item_augmented_assignment_is_allowed() -> None:
    assert check_source("def f(db, k):\n    db['t'][k]['n'] += 1\n    return 1\n", "f") == []


def test_check_never_executes() -> None:
    # A module-level side effect would be a policy violation anyway; the check must not run it.
    assert check_source("raise SystemExit(3)\ndef f(db):\n    return 1\n", "f")
