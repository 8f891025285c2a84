"""Rollout agents: the policy under training and the simulated user."""
