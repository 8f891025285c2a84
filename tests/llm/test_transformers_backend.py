"""outlines over a tiny random-weight transformers model: constrained output always parses."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the transformers backend needs torch: pip install 'scaleenv[local]'")
transformers = pytest.importorskip("transformers", reason="the transformers backend needs transformers: pip install 'scaleenv[local]'")

from scaleenv._backend_spec import backend_from_spec  # noqa: E402
from scaleenv._agents.llm.port import Llm, LlmExhaustedError, LlmRequest, render_messages  # noqa: E402
from scaleenv._store import Stream  # noqa: E402

from .conftest import llm_calls  # noqa: E402
from .structs import Tiny  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer GPT-2 with random weights and a byte-level BPE tokenizer trained here (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    path = tmp_path_factory.mktemp("tiny-gpt2")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(['{"name": "alpha", "kind": "a", "ok": true, "tags": ["x"]}'] * 20, trainer)
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                                  bos_token="<|endoftext|>", unk_token="<|endoftext|>")
    hf_tok.save_pretrained(path)
    config = transformers.GPT2Config(vocab_size=len(hf_tok), n_positions=512, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=hf_tok.eos_token_id, eos_token_id=hf_tok.eos_token_id)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(path)
    return path


async def test_random_weights_still_give_schema_valid_json(tiny_model: Path, log, writer) -> None:
    backend = backend_from_spec(f"transformers:{tiny_model}", model=None)
    assert backend.name == "transformers" and backend.model == tiny_model.name
    llm = Llm(backend, run_seed=1, max_attempts=1)
    for i in range(4):
        ctx = {"i": i}
        req = LlmRequest(role="test/tiny", messages=render_messages("Name it.", ctx, "Go."), context=ctx, max_tokens=200)
        got = await llm.generate(Stream(writer, f"tiny/{i}"), req, Tiny)
        assert isinstance(got.value, Tiny) and got.attempts == 1
    calls = llm_calls(log)
    assert len(calls) == 4 and all(c.error is None and c.completion_tokens > 0 for c in calls)


async def test_a_prompt_over_the_context_is_one_error_naming_both_lengths(tiny_model: Path, log, writer) -> None:
    from scaleenv._agents.llm.errors import BackendError

    backend = backend_from_spec(f"transformers:{tiny_model}", model=None)
    assert backend.context_length() == 512  # the tiny model's n_positions
    llm = Llm(backend, run_seed=1, max_attempts=1)
    ctx = {"history": "alpha kind tags " * 400}  # a few thousand tokens
    req = LlmRequest(role="test/tiny", messages=render_messages("Name it.", ctx, "Go."), context=ctx, max_tokens=200)
    with pytest.raises(BackendError) as caught:
        await llm.generate(Stream(writer, "tiny/long"), req, Tiny)
    message = str(caught.value)
    assert "over the model's context of 512 tokens" in message and "the prompt is " in message
    prompt_tokens = int(message.split("the prompt is ", 1)[1].split(" ", 1)[0])
    assert prompt_tokens > 512 and "\n" not in message
    assert llm_calls(log) == []  # no answer, so no call recorded


def test_the_cli_ends_a_prompt_over_the_context_with_one_line_and_exit_1(tiny_model: Path, tmp_path: Path) -> None:
    """`scaleenv run` on the tiny model (512 positions): the architect's first prompt is
    longer, and the run stops with exit 1 and one line naming both lengths, no traceback;
    the log it began stays readable."""
    import json
    import subprocess
    import sys

    from scaleenv._store.log import Log

    path = tmp_path / "run.lmdb"
    out = subprocess.run([sys.executable, "-m", "scaleenv", "run", "--llm", f"transformers:{tiny_model}", "--log", str(path),
                          "--domains", "1", "--seed", "1", "--json"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 1, out.stderr
    error = json.loads(out.stdout.splitlines()[-1])
    assert error["exit"] == 1 and "over the model's context of 512 tokens" in error["error"]
    assert "\n" not in error["error"] and int(error["error"].split("the prompt is ", 1)[1].split(" ", 1)[0]) > 512
    assert "Traceback" not in out.stderr and "IndexError" not in out.stderr
    assert error["error"] in out.stderr  # the same one line on stderr
    with Log.open(path, readonly=True) as event_log:
        assert event_log.meta_get("run_config")["seed"] == 1  # nothing lost: the run's config was stored


async def test_an_answer_gets_only_the_positions_the_context_has_left(tiny_model: Path, log, writer) -> None:
    backend = backend_from_spec(f"transformers:{tiny_model}", model=None)
    llm = Llm(backend, run_seed=1, max_attempts=1)
    ctx = {"history": "alpha kind " * 15}  # with the answer's shape in the system message: some 455 of the 512 positions
    req = LlmRequest(role="test/tiny", messages=render_messages("Name it.", ctx, "Go."), context=ctx, max_tokens=4096)
    try:  # no IndexError past the last position: the answer stops there
        await llm.generate(Stream(writer, "tiny/near"), req, Tiny)
    except LlmExhaustedError:
        pass  # random weights rarely close the JSON in the positions left: the port rejects the cut answer
    call = llm_calls(log)[-1]
    # completion_tokens re-tokenizes the decoded text, which may count a few more than were generated
    assert 400 < call.prompt_tokens < 512 and 0 < call.completion_tokens <= 512 - call.prompt_tokens + 8


def test_a_local_policy_reads_its_tools_and_the_answer_shape(tiny_model: Path) -> None:
    """A request offering tools gets no answer shape from the port (an API model answers in
    native tool calls); a local model answers in PolicyTurn's JSON, so its prompt names every
    offered tool with its parameters, and that JSON's shape. Without tools nothing is added."""
    import json

    import msgspec

    from scaleenv._agents.llm.port import schema_for
    from scaleenv._agents.llm.transformers_backend import local_messages, render_prompt
    from scaleenv._agents.rollout.answers import PolicyTurn
    from tests.rollout_sims.harness import DOMAIN, tool_schemas

    tools = tool_schemas(DOMAIN)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model)
    schema, name = schema_for(PolicyTurn)
    messages = [{"role": "system", "content": "You are the shop's agent."}, {"role": "user", "content": "Cancel orde_1a2b."}]
    prompt = render_prompt(tokenizer, local_messages(LlmRequest(role="policy", messages=messages, context={}, tools=tools), schema))
    for tool in tools:
        fn = tool["function"]
        assert fn["name"] in prompt and json.dumps(fn["parameters"], separators=(",", ":"), sort_keys=True) in prompt
    assert name in prompt and "tool_calls" in prompt
    assert prompt.index("You are the shop's agent.") < prompt.index(tools[0]["function"]["name"]) < prompt.index("Cancel orde_1a2b.")
    plain = LlmRequest(role="user", messages=messages, context={})
    assert local_messages(plain, schema) == messages
    assert msgspec.json.decode(msgspec.json.encode(local_messages(LlmRequest(role="policy", messages=messages, context={}, tools=tools),
                                                                  schema)))[1] == messages[1]
