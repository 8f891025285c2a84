"""Domain briefs: one slot's brief costs the same at any slot and is the one it always was."""

from __future__ import annotations

import random

import pytest

from scaleenv._model.briefs import CATALOGUE, PAPER, QUALIFIERS, TAKEN_WINDOW, brief_for, briefs_for, taken_names
from scaleenv._seeding import derive_seed


def _briefs_before(preset: str, domains: int, seed: int, min_tools: int, max_tools: int) -> list:
    """The briefs as they were assigned before a slot could be computed alone (every slot up to it)."""
    rng = random.Random(derive_seed(seed, "briefs", preset))
    pool = list(PAPER if preset == "paper" else CATALOGUE)
    if preset != "paper":
        rng.shuffle(pool)
    out = []
    for slot in range(domains):
        base = pool[slot % len(pool)]
        lap = slot // len(pool)
        name = base.name if lap == 0 else f"{QUALIFIERS[(slot + lap) % len(QUALIFIERS)]}_{base.name}"
        if lap >= len(QUALIFIERS):
            name = f"{name}_{lap}"
        size = random.Random(derive_seed(seed, "brief-size", slot)).randint(min_tools, max_tools)
        out.append(base._replace(name=name, tools=size))
    return out


@pytest.mark.parametrize("preset", ["default", "paper"])
@pytest.mark.parametrize("seed", [1, 7])
def test_each_slot_gets_the_brief_it_always_had(preset: str, seed: int) -> None:
    before = _briefs_before(preset, 600, seed, 25, 32)
    assert briefs_for(preset, 600, seed, 25, 32) == before
    assert all(brief_for(preset, s, seed, 25, 32) == before[s] for s in (0, 1, 29, 30, 31, 479, 599))


def test_taken_names_the_slots_before_within_the_window() -> None:
    names = [b.name for b in _briefs_before("default", 300, 1, 25, 32)]
    for slot in (0, 1, TAKEN_WINDOW, TAKEN_WINDOW + 1, 299):
        assert taken_names("default", slot, 1) == names[max(0, slot - TAKEN_WINDOW):slot]
    # a slot within the window is told every slot before it, as before the window
    assert taken_names("default", TAKEN_WINDOW, 1) == names[:TAKEN_WINDOW]
