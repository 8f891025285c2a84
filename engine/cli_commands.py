"""The list of subcommand registrars (one module per area)."""

from __future__ import annotations

REGISTRARS: list = []
