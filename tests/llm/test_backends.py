"""``--llm`` specs to backends."""

from __future__ import annotations

import pytest

from scaleenv._backend_spec import backend_from_spec
from scaleenv._agents.llm.openai_backend import OpenAIBackend
from scaleenv._agents.sim import LatencyModel, NoiseModel, SimBackend


async def test_specs() -> None:
    sim = backend_from_spec("sim", model=None, noise=NoiseModel.off(), latency=LatencyModel(enabled=True))
    assert isinstance(sim, SimBackend) and sim.noise == NoiseModel.off() and sim.latency.enabled
    assert isinstance(backend_from_spec(""), SimBackend)
    remote = backend_from_spec("openai:http://127.0.0.1:1/v1", model="qwen", retries=0)
    assert isinstance(remote, OpenAIBackend) and remote.model == "qwen" and remote.name == "openai"
    await remote.aclose()
    vllm = backend_from_spec("vllm:http://127.0.0.1:1/v1", model="qwen")
    assert vllm.name == "vllm"
    await vllm.aclose()


async def test_api_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    remote = backend_from_spec("openai:http://127.0.0.1:1/v1", model="qwen")
    assert remote.api_key == "sk-from-env"
    assert backend_from_spec("openai:http://127.0.0.1:1/v1", model="q", api_key="sk-given").api_key == "sk-given"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert backend_from_spec("openai:http://127.0.0.1:1/v1", model="q").api_key == "EMPTY"


@pytest.mark.parametrize(("spec", "why"), [
    ("gpt4", "unknown backend 'gpt4'"),
    ("sim:3", "takes no argument"),
    ("openai:localhost:8000", "needs an http(s) URL"),
    ("openai:http://127.0.0.1:8000/v1", "needs --model"),
    ("recorded:", "needs the path"),
    ("transformers:", "needs a model directory"),
])
def test_bad_specs_name_the_spec_and_the_valid_forms(spec: str, why: str) -> None:
    with pytest.raises(ValueError) as info:
        backend_from_spec(spec, model=None)
    msg = str(info.value)
    assert repr(spec) in msg and why in msg and "recorded:LOGPATH" in msg and "openai:URL" in msg


def test_recorded_spec_of_a_missing_log(tmp_path) -> None:
    from scaleenv._store.errors import NotALog

    with pytest.raises(NotALog):
        backend_from_spec(f"recorded:{tmp_path / 'nope'}", model=None)
