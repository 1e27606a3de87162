"""The generated search finds each flaw the core had against Credentials and Canvas as they
really are.

``scenarios.variants`` keeps the core as it was before issues 13 and 14, one flaw family per
engine variant: an uncertain award trusted absent after one read (:class:`TrustsOneRead`),
assertions read at round start and written much later (:class:`ChecksEarly`), a badge
class's 404 aborting the whole course (:class:`AbortsOnMissingClass`), and two courses
awarding one class in the same tick (:class:`AwardsSharedClassTwice`). A scenario file can
replay each flaw from a script; these tests ask whether the *generated* state machine, with
no script, finds it by itself within the ``ci`` example budget, and shrinks it to a
reproduction a person would read (at most :data:`MAX_STEPS` actions), exactly as
``tests/test_detection.py`` asks of the legacy engine's five symptoms.

Each hunt fails only on the invariant that guards its flaw (``relevant`` and ``judged``),
so that Hypothesis hunts that flaw and shrinks towards it, not towards another one:

- ``no-duplicate-awards`` for the three award flaws: each makes the sync store a second
  award of a class to a student who holds one (or held one in sight of the sync).
- ``course-freshness`` for :class:`AbortsOnMissingClass`. Aborting the round is the flaw
  itself: the course never completes a sync while the class is missing, whatever else
  happens. ``members-match-enrollments`` and ``leaderboard-matches-awards`` break only when
  something in the course also changes after the class went missing (a consequence, which
  a run may or may not contain), and ``earned-implies-awarded`` exempts the missing class
  by design, so none of them is the honest guard.

A detection is shown to be the flaw's doing, not the hunting machine's, by running the same
machine (same name, hence the same derandomized examples) against the core
(:class:`sync_core.SyncEngine`), which must pass the whole budget.

How robust each detection is, beyond the one derandomized seed ``ci`` runs (measured by
renaming the machine, which reseeds it; generation only, 200 examples), was measured on an
earlier world: :class:`ChecksEarly` and :class:`AbortsOnMissingClass` were found within the
first examples on most seeds (a hand edit mid-round; a class archived or misnamed), and
:class:`TrustsOneRead` on the ``ci`` seed only. Since then the world goes past its stated
bounds only in one example in four (``FaultPlan.beyond_bounds``, which excuses duplicates by
the sync), commit delays are spread over the settle window, a teacher's hand award mid-round
targets what a student has earned, and :class:`TrustsOneRead` comes back after
``backoff_base`` as the core once did; the robustness has not been measured again.
:class:`AwardsSharedClassTwice` needs a student earning one class in two linked courses
while the first course's award is still in doubt (a late commit). The machine's world has
that shape in half its examples (``SyncMachine._two_courses_one_class``), and its swarm
switches each fault kind off in half the examples, so that a late commit is not masked by
the kinds drawn before it. The race has one window, the first award of the shared class,
and a single derandomized search of the whole budget found it on 2 seeds of 10. Split over
:data:`SEEDS` searches it was found in one process and missed in an xdist worker, so its
test is a non-strict expected failure (:data:`NOT_FOUND_EVERY_TIME`).
:class:`RestartsAfterThrottle` (issue 14) aborts a round on Canvas's throttle;
``progress-under-load`` guards it.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from scenarios.variants import (
    AbortsOnMissingClass,
    AwardsSharedClassTwice,
    ChecksEarly,
    RestartsAfterThrottle,
    TrustsOneRead,
)
from simulators.harness.invariants import Violation
from simulators.harness.machine import SyncMachine
from sync_core import SyncEngine
from tests.test_detection import budget, shrunk_reproduction

FLAWS: dict[str, tuple[type[SyncEngine], str]] = {
    "trusts-one-read": (TrustsOneRead, "no-duplicate-awards"),
    "checks-early": (ChecksEarly, "no-duplicate-awards"),
    "aborts-on-missing-class": (AbortsOnMissingClass, "course-freshness"),
    "awards-shared-class-twice": (AwardsSharedClassTwice, "no-duplicate-awards"),
    "restarts-after-throttle": (RestartsAfterThrottle, "progress-under-load"),
}
"""Each variant's name (as ``credsync`` and scenario files use it), its engine, and the one
invariant that guards its flaw."""


class GuardMachine(SyncMachine):
    """``SyncMachine`` failing only on violations of its ``guard`` invariant."""

    guard: ClassVar[str]

    def relevant(self, violation: Violation) -> bool:
        return violation.invariant == type(self).guard


SEEDS = 3
"""How many differently seeded searches share a hunt's ``ci`` budget. A derandomized search
is one sample of a search whose find rate is well below one for some flaws (measured by
renaming the machine, which reseeds it), and which Hypothesis may steer differently from
one process to the next (the same hunt found a flaw alone and missed it in an xdist worker
that had run other tests first): three searches of a third of the budget each depend far
less on one unlucky sample than one search of the whole budget."""


def hunting(flaw: str, engine: type[SyncEngine], seed: int = 0) -> type[GuardMachine]:
    """A machine that runs ``engine`` and judges only the invariant guarding ``flaw``.

    Built with ``type()`` and named after the flaw and ``seed``, not the engine, so that
    the variant and the core run the very same derandomized examples (the name seeds them),
    and so that unrelated edits to this file do not change them."""
    guard = FLAWS[flaw][1]
    return type(
        f"Hunts{flaw.title().replace('-', '')}Machine{seed or ''}",
        (GuardMachine,),
        {
            "new_engine": engine,
            "restore_engine": engine.from_json,
            "guard": guard,
            "judged": frozenset({guard}),
        },
    )


NOT_FOUND_EVERY_TIME: dict[str, str] = {
    "awards-shared-class-twice": "found in some processes and not in others (2 seeds of 10 "
    "for one search; found alone, missed in an xdist worker): see the module docstring",
}
"""Flaws the ``ci`` budget finds only sometimes: an expected failure that is not strict, so a
miss does not fail the build and a find is reported (XPASS). Only the budget running out
counts as the miss; a failure of any other kind fails the test."""


def detections() -> list[object]:
    return [
        pytest.param(
            flaw,
            marks=pytest.mark.xfail(
                reason=NOT_FOUND_EVERY_TIME[flaw], raises=pytest.fail.Exception, strict=False
            ),
        )
        if flaw in NOT_FOUND_EVERY_TIME
        else flaw
        for flaw in FLAWS
    ]


@pytest.mark.parametrize("flaw", detections())
def test_the_generated_search_finds_the_flaw(flaw: str) -> None:
    engine, guard = FLAWS[flaw]
    for seed in range(SEEDS):
        machine = hunting(flaw, engine, seed)
        try:
            run_state_machine_as_test(machine, settings=share_of_budget())
        except AssertionError as failure:
            found = failure
            break
    else:
        pytest.fail(f"{flaw}: no {guard} violation in {settings().max_examples} examples")
    # Only the guard's violations fail a run: any other failure is an error of the engine
    # or the harness (an internal assertion), not the flaw.
    summary = shrunk_reproduction(
        machine, found, lambda line: line.startswith(f"{guard} broken in course "), flaw
    )
    print(f"\n{flaw}: found, {summary}")


@pytest.mark.parametrize("flaw", FLAWS)
def test_the_same_hunt_finds_nothing_in_the_core(flaw: str) -> None:
    """The hunt that finds the flaw in its variant runs the whole budget clean against the
    core, on the same examples: the detection is due to the flaw the variant keeps, not to
    the machine or the guard."""
    for seed in range(SEEDS):
        run_state_machine_as_test(hunting(flaw, SyncEngine, seed), settings=share_of_budget())


def share_of_budget() -> settings:
    """One seed's share of the ``ci`` budget (see :data:`SEEDS`)."""
    return settings(budget(), max_examples=budget().max_examples // SEEDS)


def test_each_hunt_is_seeded_apart_and_fails_on_its_guard_only() -> None:
    """Distinct names (each seeds its own examples), one judged invariant per hunt, and
    ``relevant`` accepting that invariant's violations and no other's."""
    machines = [
        hunting(flaw, engine, seed) for flaw, (engine, _) in FLAWS.items() for seed in range(SEEDS)
    ]
    assert len({m.__name__ for m in machines}) == len(machines)
    for machine in machines:
        assert machine.judged == frozenset({machine.guard})
        state = machine()
        for name in {guard for _, guard in FLAWS.values()}:
            violation = Violation(name, 101, 1, "detail")
            assert state.relevant(violation) == (name == machine.guard), (machine, name)
