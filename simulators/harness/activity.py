"""Seeded Canvas activity over a term: what teachers, students and the SIS do to a course.

The state machine explores activity through Hypothesis; this module is for runs driven by
a plain seed (the ``credsync simulate`` command, soak runs), where every choice still comes
from one :class:`~simulators.faults.ChoiceSource`, so a seed replays the same term.
"""

from __future__ import annotations

from collections.abc import Callable

from simulators.faults import ChoiceSource
from simulators.world import World


def _pick(choices: ChoiceSource, options: list[int]) -> int | None:
    return sorted(options)[choices.draw(len(options))] if options else None


def _students(world: World, course_id: int) -> list[int]:
    return [
        e.user_id
        for e in world.canvas.enrollments_in(course_id)
        if e.type == "StudentEnrollment" and e.state == "active"
    ]


def grade(world: World, choices: ChoiceSource) -> str | None:
    course_id = _pick(
        choices, [c for c in world.canvas.open_courses() if world.canvas.assignments_in(c)]
    )
    if course_id is None:
        return None
    assignment_id = _pick(choices, [a.id for a in world.canvas.assignments_in(course_id)])
    user_id = _pick(choices, _students(world, course_id))
    if assignment_id is None or user_id is None:
        return None
    points = world.canvas.assignments[assignment_id].points_possible or 10.0
    score = points * choices.draw(101) / 100
    world.canvas.grade(course_id, assignment_id, user_id, score)
    return f"graded user {user_id} {score:g}/{points:g} on assignment {assignment_id}"


def enroll(world: World, choices: ChoiceSource) -> str | None:
    course_id = _pick(choices, world.canvas.open_courses())
    if course_id is None:
        return None
    serial = len(world.canvas.users) + 1
    user_id = world.canvas.create_user(f"Late Student {serial}", f"late{serial}@example.edu")
    world.canvas.enroll(user_id, course_id)
    return f"enrolled new user {user_id} in course {course_id}"


def drop(world: World, choices: ChoiceSource) -> str | None:
    open_courses = set(world.canvas.open_courses())
    live = [
        e.id
        for e in world.canvas.enrollments.values()
        if e.type == "StudentEnrollment" and e.state == "active" and e.course_id in open_courses
    ]
    enrollment_id = _pick(choices, live)
    if enrollment_id is None:
        return None
    world.canvas.set_enrollment_state(enrollment_id, "deleted")
    return f"dropped enrollment {enrollment_id}"


def complete_item(world: World, choices: ChoiceSource) -> str | None:
    item_id = _pick(choices, [i.id for i in world.canvas.items.values() if i.requirement])
    if item_id is None:
        return None
    course_id = world.canvas.modules[world.canvas.items[item_id].module_id].course_id
    user_id = _pick(choices, _students(world, course_id))
    if user_id is None:
        return None
    world.canvas.complete_module_item(item_id, user_id)
    return f"user {user_id} completed module item {item_id}"


def change_email(world: World, choices: ChoiceSource) -> str | None:
    user_id = _pick(choices, list(world.canvas.users))
    if user_id is None:
        return None
    email = f"renamed{choices.draw(10_000)}.{user_id}@example.edu"
    world.canvas.change_email(user_id, email)
    return f"user {user_id} changed email"


ACTIVITIES: tuple[Callable[[World, ChoiceSource], str | None], ...] = (
    grade,
    grade,
    grade,
    enroll,
    drop,
    complete_item,
    complete_item,
    change_email,
)


def random_activity(world: World, choices: ChoiceSource) -> str | None:
    """Apply one activity, weighted towards grading; describe it, or ``None`` if none fit."""
    return ACTIVITIES[choices.draw(len(ACTIVITIES))](world, choices)
