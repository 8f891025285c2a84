"""The sim LLM's world for stage 1 (and the task writer): role simulators that design
domains, write tool code from contracts (with realistic bugs), review, test and repair it.

Importing the package registers the role simulators with the sim backend.
"""

from . import architect, roles, task_writer  # noqa: F401  (registers the roles)
from .codegen import BUG_KINDS, applicable_bugs, generate
from .vocab import COMBOS, VOCABULARY_SIZE, build_domain, domain_for

__all__ = ["BUG_KINDS", "COMBOS", "VOCABULARY_SIZE", "applicable_bugs", "build_domain", "domain_for", "generate"]
