"""``scaleenv export`` rows load with Hugging Face ``datasets`` and render with a chat template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scaleenv.cli import main as cli
from scaleenv.store.events.episodes import RewardGiven
from scaleenv.store.log import Log

from .conftest import copy_template, roll

ROLES = {"system", "user", "assistant", "tool"}


@pytest.fixture(scope="module")
def exported(template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """A small sim run exported as jsonl and parquet; the rewards its log holds per episode."""
    pytest.importorskip("pyarrow", reason="parquet export needs pyarrow (pip install 'scaleenv[export]')")
    out = tmp_path_factory.mktemp("export")
    path = copy_template(template, out / "log")
    roll(path, 2)
    for fmt in ("jsonl", "parquet"):
        assert cli(["export", "--log", str(path), "--format", fmt, "--out", str(out / f"episodes.{fmt}"), "--json"]) == 0
    with Log.open(path, readonly=True) as log:
        rewards = {r.stream.removeprefix("episode/"): r.event.reward for r in log.read() if isinstance(r.event, RewardGiven)}
    return out, rewards


def load(out: Path, fmt: str) -> list[dict[str, Any]]:
    datasets = pytest.importorskip(
        "datasets", reason="the export round trip needs Hugging Face datasets (pip install 'scaleenv[test]')")
    builder = "json" if fmt == "jsonl" else "parquet"
    ds = datasets.load_dataset(builder, data_files=str(out / f"episodes.{fmt}"), split="train",
                               cache_dir=str(out / f"hf-cache-{fmt}"))
    rows = [dict(r) for r in ds]
    for r in rows:
        if isinstance(r["tools"], str):  # parquet keeps tool schemas as JSON text (see replay/export.py)
            r["tools"] = json.loads(r["tools"])
    return rows


def present(d: dict[str, Any], key: str) -> Any:
    """A message field, treating null (a key other rows have, in columnar formats) as absent."""
    return d.get(key)


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
            for call in present(m, "tool_calls") or []:
                assert call["type"] == "function"
                assert isinstance(call["id"], str) and call["id"] not in open_calls
                assert isinstance(call["function"]["name"], str) and isinstance(call["function"]["arguments"], str)
                open_calls.add(call["id"])
        elif m["role"] == "tool":
            assert present(m, "tool_call_id") in open_calls, f"tool message answers no earlier call: {m}"
            open_calls.discard(m["tool_call_id"])
            json.loads(m["content"])
        else:
            assert not present(m, "tool_calls") and not present(m, "tool_call_id")
    assert not open_calls, f"calls without a tool result: {open_calls}"


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_export_loads_with_datasets_as_openai_chat(exported: tuple[Path, dict[str, float]], fmt: str) -> None:
    out, rewards = exported
    rows = load(out, fmt)
    assert len(rows) == len(rewards) > 0
    tool_calls = 0
    for row in rows:
        names = check_tools(row["tools"])
        assert names
        check_messages(row["messages"])
        assert row["reward"] in (0.0, 1.0) and row["reward"] == rewards[row["episode_id"]]
        assert row["fault"] and row["end_reason"]
        tool_calls += sum(len(present(m, "tool_calls") or []) for m in row["messages"])
    assert tool_calls > 0, "the run made no tool call: nothing was checked"


def tiny_tokenizer() -> Any:
    """A word-level tokenizer built here (no download) with a tool-calling chat template."""
    transformers = pytest.importorskip("transformers", reason="rendering needs transformers (pip install 'scaleenv[local]')")
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    model = tokenizers.models.WordLevel(vocab=vocab, unk_token="[UNK]")
    tok = tokenizers.Tokenizer(model)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    template = (
        "{% if tools %}<|im_start|>tools\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}<|im_end|>\n{% endif %}"
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
        "{% if m.get('tool_calls') %}{% for c in m['tool_calls'] %}\n<tool_call>{\"name\": \"{{ c['function']['name'] }}\", "
        "\"arguments\": {{ c['function']['arguments'] }}, \"id\": \"{{ c['id'] }}\"}</tool_call>{% endfor %}{% endif %}"
        "{% if m.get('tool_call_id') %} [answers {{ m['tool_call_id'] }}]{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", chat_template=template)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_trainer_can_render_the_rows_with_a_chat_template(exported: tuple[Path, dict[str, float]], fmt: str) -> None:
    out, _ = exported
    rows = load(out, fmt)
    tokenizer = tiny_tokenizer()
    for row in rows:
        text = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
        ids = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=True)
        assert text.count("<|im_start|>") == len(row["messages"]) + 1  # + the tools block
        for m in row["messages"]:
            for call in present(m, "tool_calls") or []:
                assert f"\"id\": \"{call['id']}\"" in text
        assert len(ids if isinstance(ids, list) else ids["input_ids"]) > 0
