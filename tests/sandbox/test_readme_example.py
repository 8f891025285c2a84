"""The README's sandbox example (Security section) runs and prints what its comments say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"


def test_the_security_sections_example_runs_as_documented(capsys: pytest.CaptureFixture[str]) -> None:
    section = README.read_text().split("## Security", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, re.S)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})  # the README's own example (trusted text)
    printed = capsys.readouterr().out.splitlines()
    documented = [line.split("# ", 1)[1].strip() for line in code.splitlines() if line.strip().startswith("print(")]
    assert printed == [
        "2024-03-15 09:30:00 2024-03-15 09:30",
        "integrity [\"notes[n2].order_id = 'o9' points at no record of orders\"]",
    ]
    assert [d.replace('"', "'") for d in documented] == [p.replace('"', "'") for p in printed]
