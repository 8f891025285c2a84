"""verifiers 0.4's plugin for scaleenv (taskset id ``scaleenv-verifiers``): verifiers finds
a taskset, and the environment that plays it, by importing a module of that name and
reading its ``__all__``. The code is :mod:`scaleenv.integrations.verifiers_v1`."""

from scaleenv.integrations.verifiers_v1 import ScaleEnvEnv, ScaleEnvTaskset, load_environment

__all__ = ["ScaleEnvTaskset", "ScaleEnvEnv", "load_environment"]
