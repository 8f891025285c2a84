"""Registers every sim role simulator (importing the modules registers them)."""

from scaleenv.agents import sim_world  # noqa: F401  (architect, coder, reviewer, tester, repairer, task_writer)
from scaleenv.agents.rollout import sim_policy, sim_user  # noqa: F401,E402  (user, policy)
