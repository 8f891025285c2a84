"""Registers every sim role simulator (importing the modules registers them)."""

from scaleenv._agents.sim import oracle, policy, user, world  # noqa: F401  (world: architect, coder, reviewer, tester, repairer, task_writer)
