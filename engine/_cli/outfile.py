"""Output files written whole or not at all: :mod:`scaleenv._outfile` (shared with the Python API's export)."""

from scaleenv._outfile import replaced_when_done

__all__ = ["replaced_when_done"]
