"""Grading one episode of a task: the reward code applied with the task's expectations.

The one place that turns a task (its expected final state, required answers and goals) and
its domain (the columns' reward policies) into a :func:`scaleenv._model.reward.score` call;
the episode loop, served episodes and ``regrade`` all grade through :func:`grade`.
"""

from __future__ import annotations

from collections.abc import Iterable

from scaleenv._model.reward import Score, goal_records, policies_of, score
from scaleenv._store.specs import DbState, DomainSpec

from .projection import TaskView


def grade(task: TaskView, spec: DomainSpec | None, state: DbState, said: Iterable[str]) -> Score:
    """The reward of an episode of ``task`` that ended in ``state`` having told the user ``said``."""
    answers = task.golden.expected_answers if task.golden else []
    goals = goal_records(task.golden.steps, task.goal_ends) if task.golden else None
    return score(task.expected_final or {}, state, answers, said, policies=policies_of(spec), goals=goals)
