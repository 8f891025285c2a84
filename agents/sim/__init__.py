"""The simulated LLM: a seeded, offline backend that plays every role.

Apart from the real agents (nothing in ``scaleenv._agents.synth``, ``.rollout`` or
``.llm`` imports it): it is one more backend behind the LLM port, wired in by the
runner when ``--llm sim`` is asked for.
"""

from .backend import SimBackend, role_simulators
from .call import LatencyModel, NoiseModel, SimCall, register_role

__all__ = ["LatencyModel", "NoiseModel", "SimBackend", "SimCall", "register_role", "role_simulators"]
