"""The coder's and repairer's prompts state the sandbox's rules: every claim is checked here
against the checker itself, so the prompt cannot drift from what is enforced."""

from __future__ import annotations

import re

import pytest

from scaleenv._agents.synth import prompts
from scaleenv._sandbox.guards import SAFE_BUILTINS
from scaleenv._sandbox.policy import check_source


def allowed_names() -> list[str]:
    m = re.search(r"may use only these names: (.*?), plus its parameters", prompts.CODER)
    assert m
    return m.group(1).split(", ")


def banned_names() -> list[str]:
    m = re.search(r"and the names (.*?)\. Module-level", prompts.CODER)
    assert m
    return m.group(1).split(", ")


def allowed_modules() -> list[str]:
    m = re.search(r"may import these standard modules only: (.*?) \(", prompts.CODER)
    assert m
    return m.group(1).split(", ")


@pytest.mark.parametrize("module", allowed_modules())
def test_every_module_the_prompt_allows_passes_the_checker(module: str) -> None:
    assert check_source(f"import {module}\ndef t(db):\n    x = {module}\n    return 1\n", "t") == []


def test_the_prompts_examples_pass_the_checker() -> None:
    source = ("import re\nfrom datetime import datetime, timedelta\nfrom decimal import Decimal\n"
              "CODE = re.compile('[a-z]+')\nPRICE = Decimal('1.50')\n"
              "def t(db):\n    now = datetime.now() + timedelta(days=1)\n    return f'{now.date()}'\n")
    assert check_source(source, "t") == []


def test_both_prompts_carry_the_rules() -> None:
    assert "may use only these names" in prompts.CODER and "may use only these names" in prompts.REPAIRER


@pytest.mark.parametrize("name", allowed_names())
def test_every_name_the_prompt_allows_passes_the_checker(name: str) -> None:
    assert name in SAFE_BUILTINS
    assert check_source(f"def t(db):\n    x = {name}\n    return 1\n", "t") == []


@pytest.mark.parametrize("name", banned_names())
def test_every_name_the_prompt_forbids_is_refused(name: str) -> None:
    assert check_source(f"def t(db):\n    x = {name}\n    return 1\n", "t")


@pytest.mark.parametrize(("what", "source"), [
    ("other imports", "import os\ndef t(db):\n    return 1\n"),
    ("other imports", "from random import random\ndef t(db):\n    return 1\n"),
    ("classes", "def t(db):\n    class A:\n        pass\n    return 1\n"),
    ("generators", "def t(db):\n    yield 1\n"),
    ("with", "def t(db):\n    with db as d:\n        return 1\n"),
    ("global", "def t(db):\n    global g\n    return 1\n"),
    ("names starting with _", "def t(db):\n    _x = 1\n    return _x\n"),
    ("attributes starting with _", "def t(db):\n    return db.__class__\n"),
    (".format", "def t(db):\n    return '{}'.format(1)\n"),
    ("a module-level helper", "def h(x):\n    return x\n\ndef t(db):\n    return h(1)\n"),
    ("a module-level set", "S = {1, 2}\ndef t(db):\n    return 1\n"),
])
def test_what_the_prompt_says_is_refused_is_refused(what: str, source: str) -> None:
    assert check_source(source, "t"), what


@pytest.mark.parametrize(("what", "source"), [
    ("f-strings", "def t(db, x):\n    return f'value {x}'\n"),
    ("a nested helper", "def t(db):\n    def h(x):\n        return x\n    return h(1)\n"),
    ("constant assignments", "LIMIT = 3\nPAIR = ('a', 1)\ndef t(db):\n    return LIMIT\n"),
    ("the id recipe", "def t(db):\n    n = len(db['orders']) + 1\n    new_id = 'ord_' + str(n).zfill(4)\n"
                      "    while new_id in db['orders']:\n        n = n + 1\n        new_id = 'ord_' + str(n).zfill(4)\n"
                      "    return new_id\n"),
])
def test_what_the_prompt_suggests_passes(what: str, source: str) -> None:
    assert check_source(source, "t") == [], what
