"""The README's "Training with RL trainers" snippets, run as written (in a folder holding
``run.lmdb``, a copy of the serve tests' rolled-out run), each in its own process."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import served

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("## Training with RL trainers")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section(), re.DOTALL)


def snippet(first_line_has: str, lang: str = "python") -> str:
    found = [b for b in blocks(lang) if first_line_has in b]
    assert len(found) == 1, f"one {lang} snippet using {first_line_has!r} in the README section"
    return found[0]


@pytest.fixture
def folder(base_run: Path, tmp_path: Path) -> Path:
    shutil.copytree(base_run, tmp_path / "run.lmdb", ignore=shutil.ignore_patterns("writer.lock"))
    return tmp_path


def run(code: str, cwd: Path, prelude: str = "") -> str:
    out = subprocess.run([sys.executable, "-c", prelude + code], cwd=cwd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, f"snippet failed:\n{code}\n--- stderr ---\n{out.stderr[-3000:]}"
    return out.stdout


@contextmanager
def process(argv: list[str], cwd: Path, ready: str) -> Iterator[str]:
    """A server process; the stderr line that says it is ready."""
    proc = subprocess.Popen(argv, cwd=cwd, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert ready in line, f"{argv[2:4]} did not start: {line!r}{proc.stderr.read() if proc.poll() is not None else ''}"
        yield line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        proc.stderr.close()


def test_gymnasium_snippet(folder: Path) -> None:
    pytest.importorskip("gymnasium")
    out = run(snippet("import gymnasium"), folder)
    assert re.fullmatch(r"tool \w+\n", out), out
    assert len(served(folder / "run.lmdb")) == 1


def test_export_and_chat_template_snippets(folder: Path) -> None:
    pytest.importorskip("datasets")
    pytest.importorskip("transformers")
    spec = importlib.util.find_spec("trl")
    if spec is None:
        pytest.skip("the chat template comes from trl's wheel: pip install 'scaleenv[trl]'")
    command = snippet("scaleenv export", "sh").split()
    assert command[0] == "scaleenv"
    subprocess.run([sys.executable, "-m", "scaleenv", *command[1:]], cwd=folder, check=True, capture_output=True)
    template = Path(spec.submodule_search_locations[0]) / "chat_templates" / "qwen3.jinja"
    prelude = (  # "your model's tokenizer": a word-level one made here, with Qwen3's chat template from trl
        "import tokenizers, transformers\n"
        "_t = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab={'[UNK]': 0}, unk_token='[UNK]'))\n"
        "_t.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()\n"
        f"tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=_t, unk_token='[UNK]', "
        f"chat_template=open({str(template)!r}).read())\n")
    out = run(snippet("load_dataset"), folder, prelude)
    reward, length = out.split()
    assert float(reward) in (0.0, 1.0) and int(length) > 100


def test_verifiers_snippet(folder: Path) -> None:
    vf = pytest.importorskip("verifiers")
    if not hasattr(vf, "MultiTurnEnv"):
        pytest.skip("the adapter is for verifiers' classic API (0.3.x)")
    code = snippet("import verifiers as vf")
    assert "http://127.0.0.1:8000/v1" in code
    with process([sys.executable, "-m", "scaleenv", "sim-server", "--port", "0"], folder, "serving") as line:
        url = line.split(" at ", 1)[1].split()[0]
        out = run(code.replace("http://127.0.0.1:8000/v1", url), folder)
    rewards = eval(out)  # noqa: S307 - the snippet prints a list of floats
    assert len(rewards) == 4 and all(r in (0.0, 1.0) for r in rewards)
    assert len(served(folder / "run.lmdb")) == 4


def test_openenv_snippet(folder: Path) -> None:
    pytest.importorskip("openenv.core")
    code = snippet("ScaleEnvClient")
    assert "http://127.0.0.1:8200" in code
    argv = [sys.executable, "-m", "scaleenv.integrations.openenv", "--log", "run.lmdb", "--port", "0"]
    with process(argv, folder, "serving") as line:
        url = line.rsplit(" at ", 1)[1].strip()
        out = run(code.replace("http://127.0.0.1:8200", url), folder)
    role, done, reward = out.split()
    assert role in ("user", "tool") and done in ("True", "False")
    episodes = served(folder / "run.lmdb")
    assert len(episodes) == 1 and all(e.ended is not None for e in episodes.values())  # ended when the server stopped


def test_skyrl_snippet(folder: Path) -> None:
    pytest.importorskip("skyrl_gym")
    out = run(snippet("import skyrl_gym"), folder)
    role, done, reward = out.split()
    assert role == "user" and done in ("True", "False") and float(reward) in (0.0, 1.0)
    assert len(served(folder / "run.lmdb")) == 1
