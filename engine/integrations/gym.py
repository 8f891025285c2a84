"""gymnasium environments over a scaleenv log (``pip install 'scaleenv[gym]'``).

Importing this module registers ``scaleenv/Chat-v0`` (an action is an OpenAI assistant
message) and ``scaleenv/Text-v0`` (an action is the model's raw text)::

    import gymnasium as gym
    import scaleenv.integrations.gym  # registers the ids

    env = gym.make("scaleenv/Chat-v0", log="run.lmdb")

The environments are :class:`ScaleEnvGym` and :class:`ScaleEnvTextGym` (see their docstrings).
"""

from __future__ import annotations

from scaleenv._serve.gym import CHAT_ID, TEXT_ID, AssistantTurn, ChatMessages, ModelText, ScaleEnvGym, ScaleEnvTextGym

__all__ = ["CHAT_ID", "TEXT_ID", "AssistantTurn", "ChatMessages", "ModelText", "ScaleEnvGym", "ScaleEnvTextGym"]
