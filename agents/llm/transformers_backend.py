"""outlines over a local transformers model (``--llm transformers:PATH``; ``pip install 'scaleenv[local]'``).

outlines builds a token-level index from the JSON schema and the model's vocabulary and
masks every decoding step with it, so the text always matches the schema, whatever the
weights (tests/llm runs it on a randomly initialised 2-layer GPT-2). Keep string lengths,
arrays and enums bounded in output types: with unbounded fields a weak model may use up
``max_tokens`` and return cut-off text (the port's validation rejects it, as for any model).

Generation is blocking (torch), so it runs in a worker thread
(``trio.to_thread.run_sync``), one call at a time (a ``CapacityLimiter(1)``): the request
seed seeds torch's global RNG right before that call, so each answer is a function of
the request. One outlines ``Generator`` is kept per schema (the index build is the
expensive part).

A prompt longer than the model's context (``max_position_embeddings``) is refused with
one :class:`~scaleenv._agents.llm.errors.BackendError` naming both lengths, before any
generation; an answer is given at most the positions the context has left.

CPU-only machines: install a CPU build of torch before the extra (the README says how),
or pip takes the CUDA build, several GB.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import attrs
import trio

from .errors import BackendError
from .port import Completion, LlmRequest, with_shape
from .shape import shape_text
from scaleenv._logs import get_logger

log = get_logger("scaleenv.llm.transformers")

GENERATOR_CACHE = 32


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    """The prompt text: the tokenizer's chat template if it has one, else ``role: content`` lines."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    lines = [f"{m.get('role', 'user')}: {m.get('content') or ''}" for m in messages]
    return "\n".join([*lines, "assistant: "])


TOOLS_LINE = ("Tools you can call (name, what it does, its parameters as JSON Schema). To call tools, "
              "answer with tool_calls: each names one tool and gives its arguments as a JSON object in a string.")


def local_messages(request: LlmRequest, json_schema: dict[str, Any]) -> list[dict[str, Any]]:
    """What a local model reads. A request that offers tools gets no answer shape from the port
    (an API model answers it in native tool calls); a local model answers it in the output
    type's JSON, constrained by outlines, so the tools it may call and that JSON's shape are
    written at the end of the system message."""
    if not request.tools:
        return list(request.messages)
    tools = [t.get("function", t) if isinstance(t, dict) else t for t in request.tools]
    listed = "\n".join(json.dumps({k: t.get(k) for k in ("name", "description", "parameters") if k in t},
                                  separators=(",", ":"), sort_keys=True) for t in tools)
    return with_shape(list(request.messages), f"{TOOLS_LINE}\n{listed}\n\n{shape_text(json_schema)}")


@attrs.define
class TransformersBackend:
    """A transformers causal LM and its tokenizer, constrained by outlines."""

    hf_model: Any
    tokenizer: Any
    model: str = "local"
    name: str = "transformers"
    _outlines: Any = attrs.field(init=False)
    _generators: OrderedDict[str, Any] = attrs.field(init=False, factory=OrderedDict)
    _limiter: trio.CapacityLimiter = attrs.field(init=False, factory=lambda: trio.CapacityLimiter(1))

    def __attrs_post_init__(self) -> None:
        import outlines

        self._outlines = outlines.from_transformers(self.hf_model, self.tokenizer)

    @classmethod
    def load(cls, path: str, *, model: str | None = None) -> TransformersBackend:
        """Load a model directory (``save_pretrained`` output). Needs the ``local`` extra."""
        try:
            import transformers
        except ImportError as exc:
            raise ValueError(
                f"--llm transformers:{path} needs torch and transformers: pip install 'scaleenv[local]'"
            ) from exc
        if not Path(path).is_dir():
            raise ValueError(f"--llm transformers:{path}: no such model directory")
        hf_model = transformers.AutoModelForCausalLM.from_pretrained(path)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        return cls(hf_model, tokenizer, model=model or Path(path).name)

    def _generator(self, json_schema: dict[str, Any]) -> Any:
        import outlines
        from outlines.types import JsonSchema

        key = json.dumps(json_schema, sort_keys=True)
        gen = self._generators.get(key)
        if gen is None:
            gen = outlines.Generator(self._outlines, JsonSchema(json_schema))
            self._generators[key] = gen
            while len(self._generators) > GENERATOR_CACHE:
                self._generators.popitem(last=False)
        else:
            self._generators.move_to_end(key)
        return gen

    def context_length(self) -> int | None:
        """The most positions the model takes (prompt and answer), from its config."""
        config = getattr(self.hf_model, "config", None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def _generate(self, request: LlmRequest, json_schema: dict[str, Any]) -> tuple[str, int, int]:
        import torch

        prompt = render_prompt(self.tokenizer, local_messages(request, json_schema))
        prompt_tokens = len(self.tokenizer(prompt)["input_ids"])
        max_new = request.max_tokens
        context = self.context_length()
        if context is not None:
            if prompt_tokens >= context:
                raise BackendError(self.name, self.model,
                                   f"the prompt is {prompt_tokens} tokens, over the model's context of {context} "
                                   "tokens: shorten the conversation (--max-turns) or use a model with a longer context")
            max_new = min(max_new, context - prompt_tokens)  # an answer cut there is rejected by the port, as any
        gen = self._generator(json_schema)
        torch.manual_seed(request.seed)
        sample = request.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": sample}
        if sample:
            kwargs["temperature"] = request.temperature
        text = gen(prompt, **kwargs)
        completion_tokens = len(self.tokenizer(text)["input_ids"])
        return text, prompt_tokens, completion_tokens

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        async with self._limiter:
            text, prompt_tokens, completion_tokens = await trio.to_thread.run_sync(self._generate, request, json_schema)
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    async def aclose(self) -> None:
        return None
