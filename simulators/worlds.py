"""Worlds from a short description: how many courses, students and pieces of work.

``credsync serve --world`` takes ``small`` (the hand-made :meth:`World.small`),
``semester`` (a term of many courses, built from :data:`SEMESTER`) or a JSON or TOML file in
the same shape, so QA can describe a world without writing Python::

    {"courses": [{"name": "Biology", "students": 40, "sections": 2, "assignments": 3,
                  "classic_quizzes": 1, "new_quizzes": 1, "modules": 2, "graded": 0.7}]}

Every course gets award rules over what it has (:func:`rules_for`). Names, emails and
grades come from the seed.
"""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from faker import Faker

from simulators.world import World
from sync_core import (
    AssignmentScore,
    AwardRule,
    CourseCompleted,
    CourseGrade,
    ModuleCompleted,
    QuizScore,
)


class WorldSpecError(ValueError):
    """A world description that cannot be built; the message says where and why."""


@dataclass(frozen=True)
class CourseSpec:
    name: str = "Course"
    students: int = 20
    sections: int = 1
    assignments: int = 2
    classic_quizzes: int = 0
    new_quizzes: int = 0
    modules: int = 1
    graded: float = 0.6  # share of (student, assignment) pairs with a grade


SEMESTER: tuple[CourseSpec, ...] = tuple(
    CourseSpec(
        name=f"Semester course {n + 1}",
        students=25 + (n * 7) % 40,
        sections=1 + n % 3,
        assignments=(0, 2, 4, 6)[n % 4],  # every fourth course has no assignments
        classic_quizzes=n % 2,
        new_quizzes=(n + 1) % 2 if n % 4 else 0,
        modules=1 + n % 3,
        graded=0.5 + (n % 5) / 10,
    )
    for n in range(12)
)


LARGE: tuple[CourseSpec, ...] = (
    CourseSpec(
        name="Large lecture",
        students=2000,
        sections=4,
        assignments=3,
        classic_quizzes=1,
        modules=3,
        graded=0.7,
    ),
    *SEMESTER[:2],
)
"""A 2,000-student lecture next to two ordinary courses: its full round (about 2,100
Canvas requests) costs several times what Canvas's bucket holds, so syncing it at all
depends on waiting out the throttle within a round."""


def rules_for(world: World, course_id: int) -> tuple[AwardRule, ...]:
    """Award rules over whatever the course has; a course with nothing gets a grade rule."""
    canvas = world.canvas
    rules: list[AwardRule] = [CourseGrade(f"c{course_id}-grade", 70.0)]
    for a in canvas.assignments_in(course_id)[:3]:
        if a.is_quiz_lti_assignment:
            rules.append(QuizScore(f"c{course_id}-nq{a.id}", a.id, 60.0, new_quizzes=True))
        elif a.quiz_id is not None:
            rules.append(QuizScore(f"c{course_id}-q{a.quiz_id}", a.quiz_id, 60.0))
        else:
            rules.append(AssignmentScore(f"c{course_id}-a{a.id}", a.id, min_percent=80.0))
    modules = canvas.modules_in(course_id)
    if modules:
        rules.append(ModuleCompleted(f"c{course_id}-m{modules[0].id}", modules[0].id))
        rules.append(CourseCompleted(f"c{course_id}-done"))
    return tuple(rules)


def load_world(name_or_path: str, seed: int) -> tuple[World, dict[int, tuple[AwardRule, ...]]]:
    """``small``, ``semester``, ``large``, or a JSON/TOML description file: the world and
    its rules."""
    if name_or_path == "small":
        return World.small(seed)
    if name_or_path == "semester":
        return build(SEMESTER, seed)
    if name_or_path == "large":
        return build(LARGE, seed)
    return build(read_specs(Path(name_or_path)), seed)


def read_specs(path: Path) -> tuple[CourseSpec, ...]:
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except OSError as exc:
        raise WorldSpecError(f"{path}: cannot read the world file: {exc.strerror}") from exc
    except ValueError as exc:
        raise WorldSpecError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}"
        ) from exc
    courses = data.get("courses") if isinstance(data, dict) else None
    if not isinstance(courses, list) or not courses:
        raise WorldSpecError(f'{path}: expected {{"courses": [...]}} with at least one course')
    return tuple(course_spec(entry, f"{path}: course {i}") for i, entry in enumerate(courses))


def course_spec(entry: object, where: str) -> CourseSpec:
    if not isinstance(entry, Mapping):
        raise WorldSpecError(f"{where}: expected an object")
    known = {f.name: f for f in fields(CourseSpec)}
    unknown = sorted(set(entry) - set(known))
    if unknown:
        raise WorldSpecError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    values: dict[str, object] = {}
    for key, value in entry.items():
        default = getattr(CourseSpec, key)
        if isinstance(default, str) and not isinstance(value, str):
            raise WorldSpecError(f"{where}: {key!r} must be a string")
        if isinstance(default, int) and (type(value) is not int or not 0 <= value <= 10_000):
            raise WorldSpecError(f"{where}: {key!r} must be a whole number from 0 to 10000")
        if isinstance(default, float) and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1
        ):
            raise WorldSpecError(f"{where}: {key!r} must be a number from 0 to 1")
        values[key] = value
    spec = CourseSpec(**values)  # type: ignore[arg-type]
    if spec.sections < 1:
        raise WorldSpecError(f"{where}: 'sections' must be at least 1")
    return spec


def build(
    specs: tuple[CourseSpec, ...], seed: int
) -> tuple[World, dict[int, tuple[AwardRule, ...]]]:
    """Courses as described, with a teacher of all of them, ready to link."""
    world = World(seed=seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    canvas = world.canvas
    world.credentials.create_issuer(fake.company(), fake.company_email())
    teacher = canvas.create_user(fake.name(), fake.unique.email())
    rules: dict[int, tuple[AwardRule, ...]] = {}
    for spec in specs:
        course_id = canvas.create_course(spec.name)
        canvas.enroll(teacher, course_id, type="TeacherEnrollment")
        sections = [canvas.sections_in(course_id)[0].id] + [
            canvas.create_section(course_id, f"Section {n + 2}") for n in range(spec.sections - 1)
        ]
        students = [
            canvas.create_user(fake.name(), fake.unique.email()) for _ in range(spec.students)
        ]
        for i, student in enumerate(students):
            canvas.enroll(student, course_id, sections[i % len(sections)])
        work = [
            canvas.create_assignment(course_id, f"Assignment {n + 1}", 10.0)
            for n in range(spec.assignments)
        ]
        work += [
            canvas.create_classic_quiz(course_id, f"Quiz {n + 1}", 10.0)[1]
            for n in range(spec.classic_quizzes)
        ]
        work += [
            canvas.create_new_quiz(course_id, f"New quiz {n + 1}", 10.0)
            for n in range(spec.new_quizzes)
        ]
        for assignment in work:
            for student in students:
                if rng.random() < spec.graded:
                    canvas.submit(course_id, assignment, student)
                    canvas.grade(course_id, assignment, student, float(rng.randint(0, 10)))
        for n in range(spec.modules):
            module = canvas.create_module(course_id, f"Week {n + 1}")
            item = canvas.add_module_item(module, "Reading", "Page", requirement="must_view")
            for student in students:
                if rng.random() < spec.graded:
                    canvas.complete_module_item(item, student)
        rules[course_id] = rules_for(world, course_id)
        for rule in rules[course_id]:
            issuer = next(iter(world.credentials.issuers))
            world.credentials.create_badge_class(issuer, rule.badge_class, rule.badge_class)
    canvas.refresh_replica()
    return world, rules
