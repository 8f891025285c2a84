"""``scaleenv export`` rows load with Hugging Face ``datasets`` and render with real chat templates.

The run exported here holds local episodes, served ones (played through the gymnasium
env, one with token ids and logprobs) and the env checker's, so every kind filter and
the typed parquet schema are exercised on real events.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from scaleenv._cli import main as cli
from scaleenv._replay.export import episode_rows, parquet_schema
from scaleenv._replay.projection import fold
from scaleenv._runner import EngineOptions
from scaleenv._store.events.llm import CallResolver, LlmCalled
from scaleenv._store.log import Log

from .conftest import copy_template, roll

ROLES = {"system", "user", "assistant", "tool"}
TEMPLATES = ("qwen3", "qwen2_5", "llama3_1")
"""trl's copies of real models' chat templates (shipped in its wheel, read offline)."""


def serve_some(path: Path) -> None:
    """Two served episodes through gymnasium (one sends token ids and logprobs) and one
    the env checker would open (label ``checker``)."""
    gym = pytest.importorskip("scaleenv._serve.gym", reason="served episodes come from the gym adapter (gymnasium)")
    options = EngineOptions(progress=False, sync=False)
    env = gym.ScaleEnvGym(str(path), options=options)
    checker = gym.ScaleEnvGym(str(path), label="checker", options=options)
    try:
        env.reset(seed=1)
        env.step({"content": "Could you tell me what you need?", "token_ids": [5, 6, 7], "logprobs": [-0.5, -0.25, -1.0]})
        env.end()
        env.reset(seed=2)
        env.step("Could you give me the id of the record you mean?")
        checker.reset(seed=3)
        checker.step("Hello! How can I help you today?")
    finally:
        checker.close()
        env.close()


@pytest.fixture(scope="module")
def exported(template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small sim run with served episodes, exported as jsonl and parquet (default kinds)
    and as parquet of the checker's episodes alone; (out folder, log)."""
    pytest.importorskip("pyarrow", reason="parquet export needs pyarrow (pip install 'scaleenv[export]')")
    out = tmp_path_factory.mktemp("export")
    path = copy_template(template, out / "log")
    roll(path, 2)
    serve_some(path)
    for fmt in ("jsonl", "parquet"):
        assert cli(["export", "--log", str(path), "--format", fmt, "--out", str(out / f"episodes.{fmt}"), "--json"]) == 0
    assert cli(["export", "--log", str(path), "--format", "parquet", "--only", "checker",
                "--out", str(out / "checker.parquet"), "--json"]) == 0
    return out, path


def rows_of(path: Path, kinds: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    with Log.open(path, readonly=True) as log:
        view = fold(log.read())
    return {r["episode_id"]: r for r in episode_rows(view, 0, kinds)}


def load(file: Path) -> list[dict[str, Any]]:
    datasets = pytest.importorskip(
        "datasets", reason="the export round trip needs Hugging Face datasets (pip install 'scaleenv[test]')")
    builder = "json" if file.suffix == ".jsonl" else "parquet"
    ds = datasets.load_dataset(builder, data_files=str(file), split="train", cache_dir=str(file.parent / f"hf-{file.stem}"))
    return [dict(r) for r in ds]


def without_nulls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as the fold has them: columnar rows carry every field, null where absent."""
    return [{k: v for k, v in m.items() if v is not None} for m in messages]


def check_tools(tools: list[dict[str, Any]]) -> set[str]:
    names = set()
    for t in tools:
        assert t["type"] == "function"
        fn = t["function"]
        assert isinstance(fn["name"], str) and fn["name"] and isinstance(fn["description"], str)
        params = fn["parameters"]
        assert params["type"] == "object" and isinstance(params["properties"], dict)
        for pname, schema in params["properties"].items():
            assert isinstance(schema, dict) and "type" in schema, f"{fn['name']}.{pname}: {schema!r}"
        assert set(params.get("required") or []) <= set(params["properties"])
        names.add(fn["name"])
    return names


def check_messages(messages: list[dict[str, Any]]) -> None:
    """An OpenAI chat list: system first, known roles, tool results answer earlier calls once."""
    assert messages[0]["role"] == "system" and messages[0]["content"]
    open_calls: set[str] = set()
    for m in messages:
        assert m["role"] in ROLES, m
        assert isinstance(m["content"], str)
        if m["role"] == "assistant":
            for call in m.get("tool_calls") or []:
                assert call["type"] == "function"
                assert isinstance(call["id"], str) and call["id"] not in open_calls
                assert isinstance(call["function"]["name"], str) and isinstance(call["function"]["arguments"], str)
                open_calls.add(call["id"])
        elif m["role"] == "tool":
            assert m.get("tool_call_id") in open_calls, f"tool message answers no earlier call: {m}"
            open_calls.discard(m["tool_call_id"])
            json.loads(m["content"])
        else:
            assert not m.get("tool_calls") and not m.get("tool_call_id")
    assert not open_calls, f"calls without a tool result: {open_calls}"


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_export_loads_with_datasets_as_openai_chat(exported: tuple[Path, Path], fmt: str) -> None:
    out, path = exported
    expected = rows_of(path, ("local", "served"))
    rows = load(out / f"episodes.{fmt}")
    assert {r["episode_id"] for r in rows} == set(expected)
    assert {r["kind"] for r in rows} == {"local", "served"}
    tool_calls = 0
    for row in rows:
        want = expected[row["episode_id"]]
        assert check_tools(row["tools"])
        check_messages(row["messages"])
        assert without_nulls(row["messages"]) == want["messages"]  # the episode fold's trajectory, as written
        assert row["reward"] in (0.0, 1.0) and row["reward"] == want["reward"]
        assert row["fault"] == want["fault"] and row["end_reason"] == want["end_reason"]
        assert row["seeds"]["episode"] == want["seeds"]["episode"] and row["seeds"]["client"] == want["seeds"]["client"]
        tool_calls += sum(len(m.get("tool_calls") or []) for m in row["messages"])
    assert tool_calls > 0, "the run made no tool call: nothing was checked"


def test_parquet_schema_is_typed_and_keeps_tokens(exported: tuple[Path, Path]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out, path = exported
    table = pq.read_table(out / "episodes.parquet")
    assert table.schema == parquet_schema()
    tool = table.schema.field("tools").type.value_type
    assert pa.types.is_struct(tool) and tool.field("function").type.field("parameters").type == pa.json_()
    assert not pa.types.is_string(table.schema.field("messages").type)
    rows = {r["episode_id"]: r for r in load(out / "episodes.parquet")}
    kept = [r for r in rows.values() if r["assistant_token_ids"]]
    assert len(kept) == 1 and kept[0]["kind"] == "served"
    assert kept[0]["assistant_token_ids"][0] == [5, 6, 7] and kept[0]["assistant_logprobs"][0] == [-0.5, -0.25, -1.0]
    assert kept[0]["seeds"]["client"] is not None
    assert isinstance(kept[0]["reward_breakdown"], dict) and "state" in kept[0]["reward_breakdown"]
    checker = load(out / "checker.parquet")
    assert [r["kind"] for r in checker] == ["checker"] and checker[0]["label"] == "checker"


def test_parquet_messages_are_the_policys_recorded_requests(exported: tuple[Path, Path]) -> None:
    """Local episodes: each exported conversation is the last request the policy was sent
    (as the log recorded it) plus its answer."""
    out, path = exported
    rows = {r["episode_id"]: r for r in load(out / "episodes.parquet") if r["kind"] == "local"}
    turns: dict[str, list[list[LlmCalled]]] = {}  # per episode, the policy's turns: their attempts
    with Log.open(path, readonly=True) as log:
        resolver = CallResolver()
        for r in log.read():
            if isinstance(r.event, LlmCalled):
                call = resolver.resolve(r.stream, r.n, r.event)
                if call.role == "policy":
                    by = turns.setdefault(r.stream.removeprefix("episode/"), [])
                    if call.attempt == 0:
                        by.append([])
                    by[-1].append(call)
    # the last turn the policy answered, as first sent (a retry adds the rejection as feedback)
    last_request = {eid: answered[-1][0].messages for eid, ts in turns.items()
                    if (answered := [t for t in ts if any(c.error is None for c in t)])}
    checked = 0
    for eid, row in rows.items():
        if eid not in last_request:
            continue  # the user ended it before the policy answered
        messages = without_nulls(row["messages"])
        assert messages[:-1] == last_request[eid] and messages[-1]["role"] == "assistant", eid
        checked += 1
    assert checked >= 5


def chat_template(name: str) -> str:
    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("real chat templates come from trl's wheel: pip install 'scaleenv[trl]' (CPU torch first, see README)")
    return (Path(spec.submodule_search_locations[0]) / "chat_templates" / f"{name}.jinja").read_text()


def tokenizer_with(template: str) -> Any:
    """A word-level tokenizer built here (no download) carrying a real model's chat template."""
    transformers = pytest.importorskip("transformers", reason="rendering needs transformers (pip install 'scaleenv[trl]')")
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", chat_template=template)


@pytest.mark.parametrize("name", TEMPLATES)
def test_real_chat_templates_render_parquet_rows_as_the_episode(exported: tuple[Path, Path], name: str) -> None:
    out, path = exported
    template = chat_template(name)
    tokenizer = tokenizer_with(template)
    one_call_only = "only supports single tool-calls" in template  # e.g. Llama 3.1: no parallel calls
    expected = rows_of(path, ("local", "served"))
    rendered = refused = 0
    for row in load(out / "episodes.parquet"):
        want = expected[row["episode_id"]]
        if one_call_only and any(len(m.get("tool_calls") or []) > 1 for m in want["messages"]):
            # the template itself refuses an assistant turn with several calls, as loaded or not
            for messages, tools in ((row["messages"], row["tools"]), (want["messages"], want["tools"])):
                with pytest.raises(Exception, match="single tool-calls"):
                    tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
            refused += 1
            continue
        text = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)  # as loaded
        assert text == tokenizer.apply_chat_template(want["messages"], tools=want["tools"], tokenize=False)
        for tool in want["tools"]:
            assert tool["function"]["name"] in text and "null" not in json.dumps(row["tools"])
        ids = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=True)
        assert len(ids if isinstance(ids, list) else ids["input_ids"]) > 0
        rendered += 1
    assert rendered + refused == len(expected) and rendered >= len(expected) // 2


def test_only_refuses_an_unknown_kind_naming_it(exported: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out, path = exported
    assert cli(["export", "--log", str(path), "--only", "local,bogus", "--out", str(out / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "--only" in err and "'bogus'" in err and "local, served, checker" in err
    assert not (out / "x.jsonl").exists()
    assert cli(["export", "--log", str(path), "--only", "checker", "--out", str(out / "c.jsonl"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 1 and summary["left_out"]["local"] > 0 and summary["left_out"]["served"] == 2


def test_rows_offer_the_tools_of_the_task_s_environment(exported: tuple[Path, Path]) -> None:
    """A row's tools are the ones the policy was offered (the task's environment H), not
    every verified tool of the domain."""
    out, path = exported
    with Log.open(path, readonly=True) as log:
        view = fold(log.read())
    smaller = 0
    for row in load(out / "episodes.parquet"):
        task = view.tasks[row["task_id"]]
        domain = view.domains[row["task_id"].split("/", 1)[0]]
        names = {t["function"]["name"] for t in row["tools"]}
        assert task.env_tools and names == set(task.env_tools) & set(domain.verified), row["episode_id"]
        smaller += len(names) < len(domain.verified)
    assert smaller > 0  # the template's environments leave some verified tools out
