"""Every subcommand's ``--help`` says what it does and shows an example."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from scaleenv._cli import build_parser, main


def _subcommands(parser: argparse.ArgumentParser, name: str = "scaleenv") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                full = f"{name} {sub_name}"
                yield full, sub
                yield from _subcommands(sub, full)


def test_every_subcommand_has_a_description_and_an_example() -> None:
    found = dict(_subcommands(build_parser()))
    assert {"scaleenv show", "scaleenv export", "scaleenv log info", "scaleenv log tail"} <= set(found)
    for name, sub in found.items():
        assert sub.description and len(sub.description) > 40, name
        assert "``" not in sub.description, f"{name}: reST markup in its description"
        assert sub.epilog and "examples:" in sub.epilog, f"{name}: no examples"
        assert any(line.strip().startswith("scaleenv ") for line in sub.epilog.splitlines()), name


def test_help_prints_them(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["log", "check", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "Scan every record" in out and "examples:\n  scaleenv log check --log run.lmdb" in out
