"""Seed chains: walks over the verified-tool dependency graph (a pure, seeded function)."""

from __future__ import annotations

import random

import networkx as nx

from scaleenv.store.specs import DomainSpec


def sample_chains(
    domain: DomainSpec,
    graph: nx.MultiDiGraph,
    rng: random.Random,
    count: int,
    length: tuple[int, int],
    *,
    attempts_per_chain: int = 40,
) -> list[list[str]]:
    """Up to ``count`` distinct chains following data edges, lengths in ``length`` (inclusive).

    Walks go backwards from a goal tool (mutating tools first: tasks should do something),
    so every chain ends where a user's request would. Chains are de-duplicated.
    """
    lo, hi = length
    tools = {t.name: t for t in domain.tools if t.name in graph}
    goals = sorted(n for n in tools if tools[n].mutates) or sorted(tools)
    readers = sorted(n for n in tools if not tools[n].mutates)
    seen: set[tuple[str, ...]] = set()
    chains: list[list[str]] = []
    for i in range(count * attempts_per_chain):
        if len(chains) >= count:
            break
        # Mostly mutating goals; some information-seeking tasks end in a read tool.
        pool = goals if (rng.random() < 0.8 or not readers) else readers
        goal = rng.choice(pool)
        want = rng.randint(lo, hi)
        chain = [goal]
        while len(chain) < want:
            preds = sorted(
                {u for u, _, k in graph.in_edges(chain[0], keys=True) if k == "data" and u not in chain and not tools[u].mutates}
            )
            if not preds:
                break
            chain.insert(0, rng.choice(preds))
        if len(chain) < lo:
            continue
        key = tuple(chain)
        if key in seen:
            continue
        seen.add(key)
        chains.append(chain)
    return chains
