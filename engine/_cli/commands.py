"""The list of subcommand registrars (one module per area), in --help order."""

from __future__ import annotations

from scaleenv._cli import inspect, llm, log, replay, rerun, run, serve, ui

REGISTRARS: list = [
    run.register,      # run, synth, tasks, rollout
    replay.register,   # replay, diff, regrade
    rerun.register,    # rerun
    inspect.register,  # audit, show, export
    serve.register,    # serve, serve-mcp
    llm.register,      # sim-server
    log.register,      # log info|dump|tail|check
    ui.register,       # ui
]
