"""The list of subcommand registrars (one module per area), in --help order."""

from __future__ import annotations

from . import cli_inspect, cli_log, cli_rerun, cli_run

REGISTRARS: list = [cli_run.register, cli_rerun.register, cli_inspect.register, cli_log.register]

try:  # the sim-server command
    from . import cli_llm

    REGISTRARS.append(cli_llm.register)
except ImportError:  # pragma: no cover - while it is being written
    pass

from . import cli_replay  # noqa: E402

REGISTRARS.append(cli_replay.register)

from . import cli_serve  # noqa: E402

REGISTRARS.append(cli_serve.register)
