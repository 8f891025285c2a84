"""The sim LLM's world for stage 1 (and the task writer): role simulators that design
domains (composed from parts: :mod:`.composer`), derive their databases, write tool code
from contracts (with realistic bugs), review, test, debug and judge it.

Importing the package registers the role simulators with the sim backend.
"""

from . import architect, chain_writer, roles, task_writer  # noqa: F401  (registers the roles)
from .codegen import BUG_KINDS, applicable_bugs, generate
from .composer import Composition, compose

__all__ = ["BUG_KINDS", "Composition", "applicable_bugs", "compose", "generate"]
