"""Registers every sim role simulator (importing the modules registers them)."""

from scaleenv.agents import sim_world  # noqa: F401  (architect, coder, reviewer, tester, repairer, task_writer)
