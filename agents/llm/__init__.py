"""The LLM port: one async interface, several backends (sim, recorded, openai, transformers)."""

from .port import Completion, Generated, Llm, LlmExhaustedError, LlmRequest, render_messages

__all__ = ["Completion", "Generated", "Llm", "LlmExhaustedError", "LlmRequest", "render_messages"]
