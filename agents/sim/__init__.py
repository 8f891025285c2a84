"""The simulated LLM: a seeded, offline backend that plays every role."""

from .backend import LatencyModel, NoiseModel, SimBackend, SimCall, register_role, role_simulators

__all__ = ["LatencyModel", "NoiseModel", "SimBackend", "SimCall", "register_role", "role_simulators"]
