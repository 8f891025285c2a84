"""Adapters for RL trainers' own environment interfaces, each a thin layer over the run's
served episodes (:class:`scaleenv._serve.environments.Environments`, reached through
:mod:`scaleenv._serve.gym` and :mod:`scaleenv._serve.threaded`), so every episode a
trainer plays is recorded in the log like any served one:

- :mod:`scaleenv.integrations.openenv`: an OpenEnv environment server and its client
  (``pip install 'scaleenv[openenv]'``);
- :mod:`scaleenv.integrations.skyrl`: a SkyRL-gym text environment (``scaleenv[skyrl]``);
- :mod:`scaleenv.integrations.verifiers`: a verifiers multi-turn tool environment
  (``load_environment``; ``scaleenv[verifiers]``: verifiers 0.3.x, the classic API);
- :mod:`scaleenv.integrations.verifiers_v1`: verifiers 0.4's v1 API (a Taskset, an Env
  relaying turns to the simulated user, the episode's tools over ``scaleenv serve-mcp``;
  plugin module ``scaleenv_verifiers``; ``scaleenv[verifiers4]``).

gymnasium itself needs no adapter: :mod:`scaleenv._serve.gym` registers its ids.
"""
