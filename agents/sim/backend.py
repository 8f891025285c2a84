"""The sim backend: role simulators behind a noise model and a latency model.

Determinism: every answer is a function of (request seed, role, context, messages,
schema) only, all of which a real model would see too; so the same request answered
in-process or over HTTP (``scaleenv sim-server``) gives the same text.

- Role simulators (registered with :func:`register_role`) read the request's
  structured context and answer as that role would; roles without one get a plausible
  instance of the schema.
- The noise model makes the failures real models make: malformed text and schema
  violations (caught by the port's validation and retried), and role-level mistakes
  (buggy code, wrong tool calls) that role simulators implement from ``call.mistake()``.
  Malformed text and schema violations only happen where decoding is not constrained,
  as with a real model: by default (``constrained=True``) the sim is a model served
  with constrained decoding, as every backend of the port is (outlines sends the output
  type's schema as a strict constraint), so only requests with tools, which no schema
  constrains, can get them. ``constrained=False`` is a server that ignores the
  constraint (the port's retries then see malformed and schema-violating answers).
- A request with tools is answered as a chat API answers it: the model's text becomes a
  message (content and tool calls; text that is not one stays content) and the port
  gets that message folded into its output type (``tool_calls.as_chat_message``),
  which is exactly what ``scaleenv sim-server`` and the openai backend make of it.
- The latency model (log-normal per role, seeded) sleeps like inference would and
  reports token counts, so benchmarks can model real serving time.
"""

from __future__ import annotations

import json
import random
from typing import Any

import attrs
import trio

from scaleenv._agents.llm.port import Completion, LlmRequest, feedback_count, parse_rendered
from scaleenv._agents.llm.tool_calls import as_chat_message
from . import roles  # noqa: F401  (importing it registers the built-in role simulators)
from .call import LatencyModel, NoiseModel, RoleSimulator, SimCall, registered_roles, role_of_request


def role_simulators() -> dict[str, RoleSimulator]:
    """The built-in role simulators (and any registered since), by role name."""
    return registered_roles()


def _violate_schema(value: Any, rng: random.Random) -> Any:
    """Break a valid answer the way models do: drop a field or give it the wrong type."""
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        broken = dict(value)
        if rng.random() < 0.5:
            del broken[key]
        else:
            broken[key] = {"unexpected": [1, 2, 3]} if not isinstance(value[key], dict) else "oops"
        return broken
    return {"answer": value}


def _malform(text: str, rng: random.Random) -> str:
    choice = rng.randrange(3)
    if choice == 0:
        return text[: max(1, len(text) * 2 // 3)]  # cut off mid-answer
    if choice == 1:
        return f"Sure! Here is the JSON you asked for:\n```json\n{text}\n```"
    return text.replace('"', "'", 3)


@attrs.define
class SimBackend:
    noise: NoiseModel = attrs.field(factory=NoiseModel)
    latency: LatencyModel = attrs.field(factory=LatencyModel)
    name: str = "sim"
    model: str = "scaleenv-sim-1"
    constrained: bool = True  # decoding holds the requested schema (requests without tools)

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        text, prompt_tokens, completion_tokens, latency = self.answer(
            request.messages, json_schema, schema_name, request.seed, request.tools, role=request.role,
            constrained=self.constrained and not request.tools,
        )
        if request.tools:
            text = as_chat_message(text, json_schema)
        if latency > 0:
            await trio.sleep(latency)
        else:
            await trio.lowlevel.checkpoint()  # as any model call would: other tasks run meanwhile
        return Completion(
            text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, latency_s=latency
        )

    def answer(
        self,
        messages: list[dict[str, Any]],
        json_schema: dict[str, Any],
        schema_name: str,
        seed: int,
        tools: list[dict[str, Any]] | None = None,
        *,
        role: str | None = None,
        constrained: bool = False,
    ) -> tuple[str, int, int, float]:
        """The sim's answer as (text, prompt tokens, completion tokens, latency). Pure.

        ``role`` is the role the request is for (in-process, the port says); without it,
        it is read from the request itself (:func:`role_of_request`), as over HTTP.
        ``constrained``: decoding was constrained to ``json_schema``, so the answer is
        schema-valid JSON (no malformed text, no schema violation; role mistakes stay).
        The text is what the model wrote, before any chat API made a message of it.
        """
        if role is None:
            role = role_of_request(schema_name, tools)
        context = parse_rendered(messages)
        if not context:
            # A plain chat (the rollout policy): the conversation and the offered tools are the context.
            turn = sum(1 for m in messages if m.get("role") == "assistant")
            context = {"conversation": messages, "tools": tools or [], "turn": turn}
        rng = random.Random(seed)
        noise_rng = random.Random(seed ^ 0x5EED)
        call = SimCall(
            role=role, context=context, schema=json_schema, schema_name=schema_name, messages=messages,
            tools=tools, attempt=feedback_count(messages), rng=rng, noise=self.noise,
        )
        simulator = role_simulators().get(role)
        value = simulator(call) if simulator is not None else call.schema_instance()
        roll = noise_rng.random()
        if not constrained and roll < self.noise.schema_violation:
            value = _violate_schema(value, noise_rng)
        text = json.dumps(value, sort_keys=True)
        if not constrained and self.noise.schema_violation <= roll < self.noise.schema_violation + self.noise.malformed:
            text = _malform(text, noise_rng)
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1
        completion_tokens = len(text) // 4 + 1
        return text, prompt_tokens, completion_tokens, self.latency.sample(noise_rng, completion_tokens)

    async def aclose(self) -> None:
        return None
