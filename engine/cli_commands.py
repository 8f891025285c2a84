"""The list of subcommand registrars (one module per area), in --help order."""

from __future__ import annotations

from . import cli_inspect, cli_llm, cli_log, cli_replay, cli_rerun, cli_run, cli_serve

REGISTRARS: list = [
    cli_run.register,      # run, synth, tasks, rollout
    cli_replay.register,   # replay, diff, regrade
    cli_rerun.register,    # rerun
    cli_inspect.register,  # audit, show, export
    cli_serve.register,    # serve, serve-mcp
    cli_llm.register,      # sim-server
    cli_log.register,      # log info|dump|tail|check
]
