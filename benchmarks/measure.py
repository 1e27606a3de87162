"""The one way every figure is timed: subject and baseline interleaved, median of repeats.

Interleaving (baseline, subject, baseline, subject, ...) means a burst of load from another
process slows both sides alike, and the median drops the repeats a burst hit hardest. Each
side is a *case*: calling it prepares untimed state (a restored engine, say) and returns
the thunk that is timed, so preparation never counts against either side.
"""

from __future__ import annotations

import gc
import operator
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Case = Callable[[], Callable[[], object]]

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}


@dataclass(frozen=True)
class Comparison:
    """Median seconds of each side over ``repeats`` interleaved runs."""

    subject: float
    baseline: float
    repeats: int

    @property
    def ratio(self) -> float:
        return self.subject / self.baseline


def timed(case: Case) -> float:
    """Seconds for one run of ``case``'s thunk (collected garbage first, so one run does not
    pay for the garbage of the previous one)."""
    thunk = case()
    gc.collect()
    start = time.perf_counter()
    thunk()
    return time.perf_counter() - start


def measure(subject: Case, baseline: Case, repeats: int) -> Comparison:
    """Median time of ``subject`` and of ``baseline``, run alternately ``repeats`` times."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    subject_times: list[float] = []
    baseline_times: list[float] = []
    for _ in range(repeats):
        baseline_times.append(timed(baseline))
        subject_times.append(timed(subject))
    return Comparison(statistics.median(subject_times), statistics.median(baseline_times), repeats)


@dataclass(frozen=True)
class Goal:
    """``value <op> bound``: what a figure must reach, with the unit it is read in."""

    op: str
    bound: float
    unit: str = "x"

    def __post_init__(self) -> None:
        if self.op not in _OPERATORS:
            raise ValueError(f"unknown goal operator {self.op!r}; expected one of {_OPERATORS}")

    def met(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.bound)

    def __str__(self) -> str:
        return f"{self.op} {self.bound:g}{self.unit}"


@dataclass(frozen=True)
class Result:
    """One line of the table: a figure's value, its goal, and what it was measured from."""

    figure: str
    name: str
    value: float
    goal: Goal | None  # None: reported for comparison, with no goal set
    details: dict[str, object] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self.value)

    def to_json(self) -> dict[str, object]:
        return {
            "figure": self.figure,
            "name": self.name,
            "value": self.value,
            "goal": None if self.goal is None else str(self.goal),
            "met": self.met,
            "details": self.details,
        }
