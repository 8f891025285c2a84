"""``--llm`` values to backends: ``sim``, ``openai:URL``, ``vllm:URL``, ``transformers:PATH``, ``recorded:LOGPATH``.

The one place that knows every backend, the sim included: the runner and the CLI wire a
backend from its spec here, so the agents and the port never import the sim.
"""

from __future__ import annotations

import os
from typing import Any

from scaleenv._agents.llm.openai_backend import OpenAIBackend
from scaleenv._agents.llm.port import Backend
from scaleenv._agents.llm.recorded import RecordedBackend
from scaleenv._agents.llm.transformers_backend import TransformersBackend
from scaleenv._agents.sim import LatencyModel, NoiseModel, SimBackend

SPEC_FORMS = (
    "sim (the offline simulated LLM, default)",
    "openai:URL (an OpenAI-compatible server, e.g. openai:http://127.0.0.1:8000/v1; needs --model)",
    "vllm:URL (a vLLM >= 0.12 server; constraints sent as structured_outputs; needs --model)",
    "transformers:PATH (a local transformers model directory; pip install 'scaleenv[local]')",
    "recorded:LOGPATH (serve the LLM outputs recorded in an earlier log)",
)


def spec_help() -> str:
    return "; ".join(SPEC_FORMS)


class BackendSpecError(ValueError):
    """An ``--llm`` value that names no usable backend (bad usage: the CLI exits 2)."""


def _bad(spec: str, why: str) -> BackendSpecError:
    return BackendSpecError(f"bad --llm value {spec!r}: {why}. Valid forms: {spec_help()}")


def check_spec(spec: str = "sim", *, model: str | None = None, paths: bool = True) -> tuple[str, str]:
    """Check an ``--llm`` value without building its backend (no model loaded, no server
    called): its form, ``--model`` where needed and (``paths``) that the model directory
    or the log it names is there. Returns ``(kind, argument)``; raises BackendSpecError naming
    the spec and the valid forms. Cheap: callers run it before they create or lock anything."""
    spec = (spec or "sim").strip()
    kind, sep, arg = spec.partition(":")
    if kind == "sim":
        if sep:
            raise _bad(spec, "'sim' takes no argument")
    elif kind in ("openai", "vllm"):
        if not arg.startswith(("http://", "https://")):
            raise _bad(spec, f"'{kind}:' needs an http(s) URL")
        if not model:
            raise _bad(spec, f"'{kind}:URL' needs --model (the model name the server serves)")
    elif kind == "transformers":
        if not arg:
            raise _bad(spec, "'transformers:' needs a model directory")
        if paths and not _is_dir(arg):
            raise _bad(spec, f"no model directory {arg}")
    elif kind == "recorded":
        if not arg:
            raise _bad(spec, "'recorded:' needs the path of an earlier log")
        if paths and not _is_file(os.path.join(arg, "data.mdb")):
            raise _bad(spec, f"no log at {arg}")
    else:
        raise _bad(spec, f"unknown backend {kind!r}")
    return kind, arg


def _is_dir(path: str) -> bool:
    try:
        return os.path.isdir(path)
    except (OSError, ValueError):  # a name too long, a NUL byte
        return False


def _is_file(path: str) -> bool:
    try:
        return os.path.isfile(path)
    except (OSError, ValueError):
        return False


def backend_from_spec(
    spec: str = "sim",
    *,
    model: str | None = None,
    noise: NoiseModel | None = None,
    latency: LatencyModel | None = None,
    api_key: str | None = None,
    **options: Any,
) -> Backend:
    """The backend an ``--llm`` value names. Raises BackendSpecError naming the spec and the valid forms.

    ``noise``/``latency`` configure the sim; ``api_key`` (default ``$OPENAI_API_KEY``, else ``"EMPTY"``) and
    ``options`` (``retries``, ``backoff_s``, ``timeout_s``, ``stream``, ``logprobs``, ...) the HTTP backends.
    """
    kind, arg = check_spec(spec, model=model, paths=False)  # the backends say what is wrong with a path
    if kind == "sim":
        sim = SimBackend(noise=noise or NoiseModel(), latency=latency or LatencyModel())
        if model:
            sim.model = model
        return sim
    if kind in ("openai", "vllm"):
        # OPENAI_API_KEY, as the openai SDK reads it: the bearer token of a server that wants one
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        return OpenAIBackend(base_url=arg, model=model, api_key=key, flavor=kind, **options)  # type: ignore[arg-type]
    if kind == "transformers":
        try:
            return TransformersBackend.load(arg, model=model)
        except ValueError as exc:  # no such directory, transformers not installed: the value given
            raise BackendSpecError(str(exc)) from None
    return RecordedBackend.from_log(arg)


def sim_noise(level: float | None) -> NoiseModel:
    """The sim's noise model for ``--noise LEVEL`` (None: the default model)."""
    if level is None:
        return NoiseModel()
    return NoiseModel(malformed=level * 0.2, schema_violation=level * 0.2, mistakes=level)


def sim_latency(enabled: bool) -> LatencyModel:
    """The sim's latency model for ``--latency`` (off: answers come at once)."""
    return LatencyModel(enabled=enabled)
