"""A whole run through ``--llm openai:`` against ``scaleenv sim-server`` equals the in-process sim,
and the sim server holds the constraints it is sent, as constrained decoding does.

Both runs go through the CLI (``scaleenv run``), the server is the ``scaleenv sim-server``
process, at the same noise (0.2, on a seed where malformed policy text, wrong tool calls
and wrong answers all happen). Their logs must hold the same events, field for
field, apart from the fields naming the backend and model, and the latency; and apart
from the shape constrained answers travel in: ``--llm openai:`` asks in OpenAI's strict
shape (``answer_shape``) and the log keeps each answer as it came (``raw``), which read
back from that shape is the in-process sim's answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import openai
import pytest

from scaleenv._agents.llm.port import schema_for, strict_schema_for, validation_error
from scaleenv._agents.llm.recorded import read_calls
from scaleenv._agents.llm.strict import STRICT_SHAPE
from scaleenv._agents.sim import NoiseModel, SimBackend
from scaleenv._agents.sim.call import answer_types
from scaleenv._cli import main
from scaleenv._serve.sim_http import SimServer, serve_sim, strict_answer
from scaleenv._store.events.llm import LlmCalled
from scaleenv._store.log import Log

from .sim_server_process import sim_server_process
from .test_request_bodies import OUTPUT_TYPES

RUN = ["--seed", "3", "--domains", "2", "--tasks-per-domain", "3", "--episodes-per-task", "3", "--noise", "0.2",
       "--graph-judge", "--no-sync", "--quiet"]
NAMING = {"backend", "model", "latency_s"}
SHAPE = {"raw", "answer_shape"}


@pytest.fixture(scope="module")
def sim_server_url() -> Iterator[str]:
    with sim_server_process("--noise", "0.2") as url:
        yield url


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "local.lmdb"
    assert main(["run", "--log", str(path), *RUN]) == 0
    return path


def _events(path: Path, shapes: list[tuple[str, str, str]] | None = None) -> dict[str, list[Any]]:
    """The log's events by stream, calls without the fields NAMING and SHAPE; ``shapes``
    gets each call's (schema name, answer shape, raw answer) in the same order."""
    out: dict[str, list[Any]] = {}
    with Log.open(path, readonly=True) as log:
        for stream, _ in log.streams():
            rows = []
            for r in log.read_stream(stream):
                event = msgspec.to_builtins(r.event)
                if isinstance(r.event, LlmCalled):
                    event = {k: v for k, v in event.items() if k not in NAMING | SHAPE}
                    if shapes is not None:
                        shapes.append((r.event.schema_name, r.event.answer_shape, r.event.raw))
                rows.append((r.n, r.cause, r.actor, event))
            out[stream] = rows
    return out


def test_a_run_over_http_records_the_events_of_the_in_process_sim(local_run: Path, sim_server_url: str,
                                                                   tmp_path: Path) -> None:
    remote = tmp_path / "remote.lmdb"
    assert main(["run", "--log", str(remote), *RUN, "--llm", f"openai:{sim_server_url}", "--model", "scaleenv-sim-1"]) == 0
    here_shapes: list[tuple[str, str, str]] = []
    there_shapes: list[tuple[str, str, str]] = []
    here, there = _events(local_run, here_shapes), _events(remote, there_shapes)
    assert sorted(here) == sorted(there)
    differing = [s for s in here if here[s] != there[s]]
    assert not differing, f"{len(differing)} streams differ, first {differing[0]}"
    # the answers: in-process in the schema's own shape; over HTTP, constrained ones are the
    # same answers in the strict shape (their parsed values, compared above, are equal)
    reshaped = 0
    for (name, local_shape, local_raw), (_, shape, raw) in zip(here_shapes, there_shapes, strict=True):
        assert local_shape == ""
        if name == "PolicyTurn":  # offered tools: no response format, nothing reshaped
            assert (shape, raw) == ("", local_raw)
            continue
        assert shape == STRICT_SHAPE
        assert raw == strict_answer(local_raw, strict_schema_for(OUTPUT_TYPES[name]))
        reshaped += raw != local_raw
    assert reshaped > 0  # some answers left optional fields out, or held maps: their strict shape differed
    episodes = [s for s in here if s.startswith("episode/")]
    calls = [e for rows in here.values() for _, _, _, e in rows if e.get("type") == "llm.called"]
    assert len(episodes) >= 6 and {c["schema_name"] for c in calls if c["schema_name"]} == set(answer_types())
    # the noise was on: some policy answers were text that no chat API parses as tool calls
    assert any(c["role"] == "policy" and c["parsed"] and c["parsed"]["content"].lstrip().startswith(("{", "Sure"))
               for c in calls)
    with Log.open(remote, readonly=True) as log:
        backends = {(r.event.backend, r.event.model) for r in log.read() if isinstance(r.event, LlmCalled)}
    assert backends == {("openai", "scaleenv-sim-1")}


def _recorded_requests(run: Path) -> list[LlmCalled]:
    """One recorded request per output type and role, as the run's agents sent them (not the
    tool-offering roles: the policy and the gate's oracle)."""
    out: dict[str, LlmCalled] = {}
    for call in read_calls(run):
        if call.role not in ("policy", "oracle"):
            out.setdefault(call.schema_name, call)
    return list(out.values())


@pytest.mark.parametrize("form", ["strict", "structured_outputs", "none", "not_strict"])
async def test_constraints_hold_at_any_noise(local_run: Path, nursery: Any, form: str) -> None:
    """Strict json_schema and structured_outputs always give schema-valid JSON, at high noise;
    without a constraint (or with a non-strict one) malformed and invalid answers come."""
    noisy = SimBackend(noise=NoiseModel(malformed=0.3, schema_violation=0.3, mistakes=0.5))
    port = await nursery.start(partial(serve_sim, "127.0.0.1", 0, server=SimServer(sim=noisy)))
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY", max_retries=0)
    types = OUTPUT_TYPES
    requests = _recorded_requests(local_run)
    assert {r.schema_name for r in requests} == set(answer_types()) - {"PolicyTurn"}
    invalid = total = 0
    for call in requests:
        output = types[call.schema_name]
        schema, name = schema_for(output)
        kwargs: dict[str, Any] = {}
        if form in ("strict", "not_strict"):
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {"name": name, "schema": schema,
                                                                                  "strict": form == "strict"}}
        elif form == "structured_outputs":
            kwargs["extra_body"] = {"structured_outputs": {"json": schema}}
        for seed in range(12):
            # no role header: the server reads the role from the schema's name, as for any client
            reply = await client.chat.completions.create(model="m", messages=call.messages, seed=seed, **kwargs)
            _, error = validation_error(reply.choices[0].message.content, output)
            total += 1
            invalid += error is not None
    await client.close()
    if form in ("strict", "structured_outputs"):
        assert invalid == 0 and total == 12 * len(requests)
    else:
        assert invalid > 0.2 * total


async def test_unconstrained_server_lets_invalid_answers_through(local_run: Path, nursery: Any) -> None:
    noisy = SimBackend(noise=NoiseModel(malformed=0.3, schema_violation=0.3, mistakes=0.0))
    port = await nursery.start(partial(serve_sim, "127.0.0.1", 0, server=SimServer(sim=noisy, constrain=False)))
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY", max_retries=0)
    call = _recorded_requests(local_run)[0]
    output = OUTPUT_TYPES[call.schema_name]
    schema, name = schema_for(output)
    fmt = {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    errors = []
    for seed in range(40):
        reply = await client.chat.completions.create(model="m", messages=call.messages, seed=seed, response_format=fmt)
        errors.append(validation_error(reply.choices[0].message.content, output)[1])
    await client.close()
    assert sum(e is not None for e in errors) >= 8
