"""Figure 6: how much simulated time the harness runs per second of wall time.

The ``semester`` scenario (twelve courses, faults, crashes, the liveness phase) runs on
the memory transport; the same scenario's throughput on the ``asgi`` and ``http``
transports is then given as a ratio to the memory transport's, measured interleaved, on a
slice of it: over HTTP the full fortnight would take most of the time budget by itself.
The full run compares the first day once per transport; ``--quick`` times the first two
days on memory, and compares only the term's opening (every course linked and synced,
then the liveness phase), which is still some four thousand requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from benchmarks.measure import Goal, Result, measure
from scenarios.scenario import Scenario, load, run

PREFIX_DAYS = 2  # the memory run of --quick
COMPARED_DAYS = 1  # the asgi and http comparisons of a full run


def first_days(scenario: Scenario, days: int) -> Scenario:
    """The scenario cut after its timeline has waited ``days`` days in all."""
    waited = 0.0
    for i, action in enumerate(scenario.timeline):
        if action.get("do") == "wait":
            waited += sum(
                float(action.get(unit, 0)) * seconds
                for unit, seconds in (("seconds", 1), ("minutes", 60), ("hours", 3600))
            ) + 86_400 * float(action.get("days", 0))
            if waited >= 86_400 * days:
                return replace(scenario, timeline=scenario.timeline[: i + 1])
    return scenario


def _simulated_rate(scenario: Scenario, transport: str) -> tuple[float, float]:
    """(simulated seconds, wall seconds) of one core run; a failing run is an error here."""
    start = time.perf_counter()
    result = run(scenario, "core", transport=transport)
    wall = time.perf_counter() - start
    assert result.verdict == "PASS", f"{scenario.name} on {transport}: {result.found[:3]}"
    return result.sim.now - result.started_at, wall


def _case(scenario: Scenario, transport: str) -> Callable[[], Callable[[], object]]:
    return lambda: lambda: run(scenario, "core", transport=transport)


def opening(scenario: Scenario) -> Scenario:
    """The scenario without its timeline: link every course, then settle."""
    return replace(scenario, timeline=())


def figures(quick: bool) -> list[Result]:
    semester = load("semester")
    subject = first_days(semester, PREFIX_DAYS) if quick else semester
    simulated, wall = _simulated_rate(subject, "memory")
    results = [
        Result(
            "6a",
            f"semester on memory: simulated s per wall s ({len(subject.timeline)} actions)",
            simulated / wall,
            Goal(">=", 100_000, " sim s/s"),
            {"simulated_s": simulated, "wall_s": wall},
        )
    ]
    compared = opening(semester) if quick else first_days(semester, COMPARED_DAYS)
    what = "semester's opening" if quick else f"semester's first {COMPARED_DAYS} day(s)"
    for transport in ("asgi", "http"):
        cmp = measure(_case(compared, transport), _case(compared, "memory"), 1)
        results.append(
            Result(
                f"6{'b' if transport == 'asgi' else 'c'}",
                f"{what}: {transport} throughput vs memory",
                cmp.baseline / cmp.subject,
                None,
                {f"{transport}_s": cmp.subject, "memory_s": cmp.baseline, "repeats": cmp.repeats},
            )
        )
    return results
