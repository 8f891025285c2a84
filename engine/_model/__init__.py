"""The pure domain model: what an environment is and how it behaves, with no I/O.

Contracts and their evaluation, the contract solver, schema-driven data generation,
design rules, database states and deltas, the reward, the tool dependency graph and the
tools' OpenAI schemas. Everything here is a pure function of its arguments; it imports
only :mod:`scaleenv._store` (the specs and events it reads) and :mod:`scaleenv._seeding`.
"""
