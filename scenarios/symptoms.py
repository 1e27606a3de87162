"""The five known symptoms, as predicates over invariant violations.

Each symptom is guarded by one invariant (see the README), but an invariant can break for
more than one reason, so a predicate adds what tells its symptom apart. The main confusion
is symptom 1: a course without assignments that never syncs also breaks every other
invariant, so symptoms 2 to 5 count only courses that have assignments (quizzes are listed
as assignments too). ``update-now-repairs`` never counts: it is the workaround's own
promise, not one of the five.

``credsync fuzz --symptom N`` and ``tests/test_detection.py`` use these to make Hypothesis
hunt, and shrink towards, one symptom at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from simulators.harness.invariants import Violation
from simulators.world import World

Predicate = Callable[[World, Violation], bool]


def _has_work(world: World, course_id: int) -> bool:
    """Whether Canvas lists assignments (quizzes included) for the course right now."""
    return bool(world.canvas.assignments_in(course_id))


def never_syncs(world: World, v: Violation) -> bool:
    """Symptom 1: a course without assignments or quizzes never completes a sync."""
    return (
        v.invariant == "course-freshness"
        and "never" in v.detail
        and not _has_work(world, v.course_id)
    )


def stops_syncing(world: World, v: Violation) -> bool:
    """Symptom 2: a course that has assignments gets no fresh sync once outages end."""
    return v.invariant == "course-freshness" and _has_work(world, v.course_id)


def earned_not_awarded(world: World, v: Violation) -> bool:
    """Symptom 3: badges missing, or "Earned" but never "Awarded", or awarded twice."""
    return v.invariant in ("earned-implies-awarded", "no-duplicate-awards") and _has_work(
        world, v.course_id
    )


def enrolment_missing(world: World, v: Violation) -> bool:
    """Symptom 4: an active student (an SIS import, a late enrolment) is not in the group."""
    return (
        v.invariant == "members-match-enrollments"
        and v.detail == "active student missing from the group"
        and _has_work(world, v.course_id)
    )


def stale_leaderboard(world: World, v: Violation) -> bool:
    """Symptom 5: the published leaderboard is not the one the awards give."""
    return v.invariant == "leaderboard-matches-awards" and _has_work(world, v.course_id)


INVARIANTS: Mapping[int, frozenset[str]] = {
    1: frozenset({"course-freshness"}),
    2: frozenset({"course-freshness"}),
    3: frozenset({"earned-implies-awarded", "no-duplicate-awards"}),
    4: frozenset({"members-match-enrollments"}),
    5: frozenset({"leaderboard-matches-awards"}),
}
"""The invariants whose violations each predicate can accept: a hunt judges only these
(:attr:`simulators.harness.machine.SyncMachine.judged`), since nothing else could fail it."""

PREDICATES: Mapping[int, Predicate] = {
    1: never_syncs,
    2: stops_syncing,
    3: earned_not_awarded,
    4: enrolment_missing,
    5: stale_leaderboard,
}
