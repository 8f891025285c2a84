"""Registers every sim role simulator (importing the modules registers them)."""
