"""The simulated world: both services on one virtual clock, plus the ground-truth oracle.

The oracle (:meth:`World.active_students`, :meth:`World.earned_now`, ...) reads the models
directly and re-implements the award-rule semantics from ``sync_core/rules.py``'s
docstrings *without* calling into ``sync_core``: an oracle that shared the engine's parsing
or rule code would share its bugs, and the invariants would prove nothing.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass

from faker import Faker

from simulators.canvas.model import Canvas
from simulators.clock import VirtualClock
from simulators.credentials.model import Credentials
from simulators.tokens import TokenStore
from sync_core.events import CourseLinked
from sync_core.rules import (
    AssignmentScore,
    AwardRule,
    CourseCompleted,
    CourseGrade,
    ModuleCompleted,
    QuizScore,
)

EarnedKey = tuple[int, int, str]  # (course id, user id, badge class)


@dataclass(frozen=True)
class Link:
    """A Canvas course mirrored into a Credentials group with these rules."""

    issuer_id: str
    group_id: str
    rules: tuple[AwardRule, ...]


class World:
    def __init__(
        self, clock: VirtualClock | None = None, replica_lag: float = 120.0, seed: int = 0
    ) -> None:
        self.clock = clock or VirtualClock()
        self.seed = seed  # of everything random about the world, request latencies included
        self.canvas = Canvas(self.clock, replica_lag)
        self.credentials = Credentials(self.clock)
        self.tokens = TokenStore(self.clock)
        self.links: dict[int, Link] = {}
        self.ever_earned: set[EarnedKey] = set()
        # Set once a replica lag or a commit delay past the sync's stated bounds happened
        # (see simulators.faults): the invariants then judge what it promises beyond them.
        self.beyond_tolerance = False
        # (when, badge class, recipient) of award requests that got no definite answer: the
        # sync cannot know yet whether they were stored (see update_now_repairs).
        self.award_doubts: list[tuple[float, str, str]] = []
        self.hand_edits: list[str] = []  # what HAND_EDIT faults did, for the trace
        # Whether a person changed Credentials by hand (fault or action): the sync puts such
        # changes right at its next full round, which the liveness phase then waits for.
        self.edited_by_hand = False
        self._noted_at: tuple[int, tuple[int, ...]] | None = None
        self._earned: dict[int, tuple[int, Link, frozenset[tuple[int, str]]]] = {}
        self._noted_courses: dict[int, tuple[int, Link]] = {}

    # ------------------------------------------------------------------ setup

    def link_course(
        self,
        course_id: int,
        rules: Sequence[AwardRule],
        issuer_id: str | None = None,
        create_badge_classes: bool = False,
    ) -> CourseLinked:
        """Create the course's group and return the event that tells the engine about it.

        Badge classes named by the rules must exist, unless ``create_badge_classes`` asks
        for the missing ones to be created under the issuer with the rule's id.
        """
        if course_id not in self.canvas.courses:
            raise KeyError(f"unknown course {course_id}")
        if issuer_id is None:
            issuer_id = next(iter(self.credentials.issuers), None) or (
                self.credentials.create_issuer("Simulated Issuer", "issuer@example.edu")
            )
        for rule in rules:
            if rule.badge_class in self.credentials.badge_classes:
                continue
            if not create_badge_classes:
                raise ValueError(f"badge class {rule.badge_class!r} does not exist")
            self.credentials.create_badge_class(issuer_id, rule.badge_class, rule.badge_class)
        name = self.canvas.courses[course_id].name
        group_id = self.credentials.create_group(issuer_id, course_id, name)
        link = Link(issuer_id, group_id, tuple(rules))
        self.links[course_id] = link
        return CourseLinked(course_id, issuer_id, group_id, link.rules)

    def relink(self, course_id: int, rules: Sequence[AwardRule]) -> CourseLinked:
        """New rules for a linked course, in the same group (a links file edited): the
        classes they name need not exist, as a typo in a links file shows."""
        old = self.links[course_id]
        link = Link(old.issuer_id, old.group_id, tuple(rules))
        self.links[course_id] = link
        return CourseLinked(course_id, link.issuer_id, link.group_id, link.rules)

    # ------------------------------------------------------------------ oracle

    def active_students(self, course_id: int) -> dict[int, str | None]:
        """Users with an active StudentEnrollment in a live, unconcluded course, with their
        lowercased primary email (``None`` when they have none): the group's members."""
        course = self.canvas.courses.get(course_id)
        if course is None or course.workflow_state in ("deleted", "completed"):
            return {}
        return self._students(course_id, ("active",))

    def earning_students(self, course_id: int) -> dict[int, str | None]:
        """Students whose work still counts: active ones, and those whose enrollment was
        completed (they, or the whole course, concluded). Concluding a course must not cost
        anyone a badge they earned; a deleted course or enrollment counts for nothing."""
        course = self.canvas.courses.get(course_id)
        if course is None or course.workflow_state == "deleted":
            return {}
        return self._students(course_id, ("active", "completed"))

    def _students(self, course_id: int, states: tuple[str, ...]) -> dict[int, str | None]:
        out: dict[int, str | None] = {}
        for e in self.canvas.enrollments_in(course_id):
            if e.type == "StudentEnrollment" and e.state in states:
                email = self.canvas.users[e.user_id].email
                out[e.user_id] = None if email is None else email.lower()
        return out

    def earned_now(self, course_id: int) -> set[tuple[int, str]]:
        """(user, badge class) pairs the linked course's earning students meet right now."""
        return set(self._earned_pairs(course_id))

    def _earned_pairs(self, course_id: int) -> frozenset[tuple[int, str]]:
        """:meth:`earned_now`, judged after every step of every example, so the answer is
        kept until the course or its link changes (``canvas.course_writes``)."""
        link = self.links.get(course_id)
        if link is None:
            return frozenset()
        version = self.canvas.course_writes.get(course_id, 0)
        cached = self._earned.get(course_id)
        if cached is not None and cached[0] == version and cached[1] is link:
            return cached[2]
        students = self.earning_students(course_id)
        earned = frozenset(
            (user_id, rule.badge_class)
            for rule in link.rules
            for user_id in students
            if self._meets(course_id, user_id, rule)
        )
        self._earned[course_id] = (version, link, earned)
        return earned

    def note_truth(self) -> None:
        """Remember every pair earned at this instant. The harness calls it before the
        engine acts and after every step, so every state the engine could have read is
        noted; it costs nothing when Canvas and the links have not changed since, and
        skips the courses that have not."""
        self.credentials.commit_due()  # a late write lands when its time comes
        mark = (self.canvas.writes, tuple(map(id, self.links.values())))
        if mark == self._noted_at:
            return
        self._noted_at = mark
        for course_id, link in self.links.items():
            version = self.canvas.course_writes.get(course_id, 0)
            noted = self._noted_courses.get(course_id)
            if noted is not None and noted[0] == version and noted[1] is link:
                continue  # nothing earned in it can have changed since it was noted
            self._noted_courses[course_id] = (version, link)
            for user_id, badge in self._earned_pairs(course_id) | self._seen_stale(course_id):
                self.ever_earned.add((course_id, user_id, badge))

    def _seen_stale(self, course_id: int) -> frozenset[tuple[int, str]]:
        """What the course's students earn, under its rules now, on what a stale read serves
        (Canvas's lagging replica): older data is what Canvas said, and a rule added since
        (a relink) judges it as the sync may. Without this, an award judged on a stale read
        under a new rule would count as unearned, though no sync could tell the read was
        stale."""
        replica = self.canvas.replica()
        if replica is self.canvas:
            return frozenset()
        seen = copy.copy(self)  # the same links, judged on the replica, with its own cache
        seen.canvas, seen._earned = replica, {}
        return seen._earned_pairs(course_id)

    def emails_ever(self, user_id: int) -> set[str]:
        """Every address the user has had, lowercased: an award to any of them is theirs."""
        return {e.lower() for e in self.canvas.users[user_id].email_history}

    def _meets(self, course_id: int, user_id: int, rule: AwardRule) -> bool:
        canvas = self.canvas
        if isinstance(rule, CourseGrade):
            score = canvas.current_score(course_id, user_id)
            return score is not None and score >= rule.min_percent
        if isinstance(rule, ModuleCompleted):
            module = canvas.modules.get(rule.module_id)
            if module is None or module.course_id != course_id:
                return False
            return canvas.module_progress(rule.module_id, user_id)[0] == "completed"
        if isinstance(rule, CourseCompleted):
            required = [
                m
                for m in canvas.modules_in(course_id)
                if any(canvas.items[i].requirement for i in m.items)
            ]
            return bool(required) and all(
                canvas.module_progress(m.id, user_id)[0] == "completed" for m in required
            )
        if isinstance(rule, AssignmentScore):
            return self._scored(
                course_id, user_id, rule.assignment_id, rule.min_points, rule.min_percent
            )
        return self._quiz_scored(course_id, user_id, rule)

    def _quiz_scored(self, course_id: int, user_id: int, rule: QuizScore) -> bool:
        if rule.new_quizzes:
            assignment_id = rule.quiz_id
        else:
            quiz = self.canvas.quizzes.get(rule.quiz_id)
            if quiz is None or quiz.deleted or quiz.course_id != course_id:
                return False
            assignment_id = quiz.assignment_id
        return self._scored(course_id, user_id, assignment_id, None, rule.min_percent)

    def _scored(
        self,
        course_id: int,
        user_id: int,
        assignment_id: int,
        min_points: float | None,
        min_percent: float | None,
    ) -> bool:
        """A score on a published, live assignment reaching the bar; excused work and
        missing scores never earn, and a percentage of no points cannot be reached."""
        assignment = self.canvas.assignments.get(assignment_id)
        if (
            assignment is None
            or assignment.course_id != course_id
            or assignment.deleted
            or not assignment.published
        ):
            return False
        if min_points is not None:
            bar = min_points
        elif assignment.points_possible is None or assignment.points_possible <= 0:
            return False
        else:
            bar = assignment.points_possible * (min_percent or 0.0) / 100.0
        sub = self.canvas.submissions.get((assignment_id, user_id))
        return sub is not None and not sub.excused and sub.score is not None and sub.score >= bar

    # ------------------------------------------------------------------ fixtures

    @classmethod
    def small(cls, seed: int) -> tuple[World, dict[int, tuple[AwardRule, ...]]]:
        """Three courses ready to link, plus their rules (not linked yet).

        A: two sections, six students (one in both sections), two assignments with some
        grades, a classic quiz, a New Quiz and modules with requirements. B: students and
        modules only, no assignments or quizzes (the course that "does not sync"). C: a few
        students (one without an email, one only invited) and one assignment. Names and
        emails come from Faker seeded with ``seed``.
        """
        world = cls(seed=seed)
        fake = Faker("en_US")
        fake.seed_instance(seed)
        rng = random.Random(seed)
        canvas = world.canvas
        issuer = world.credentials.create_issuer(fake.company(), fake.company_email())

        def person(email_case: str = "lower") -> int:
            name = fake.name()
            email = fake.unique.email()
            email = email.title() if email_case == "mixed" else email
            return canvas.create_user(name, email)

        def badge(label: str) -> str:
            return world.credentials.create_badge_class(issuer, label)

        teacher = person()
        rules: dict[int, tuple[AwardRule, ...]] = {}

        # Course A
        course_a = canvas.create_course(f"{fake.catch_phrase()} (A)")
        canvas.enroll(teacher, course_a, type="TeacherEnrollment")
        section_2 = canvas.create_section(course_a, "Section 2")
        default_a = canvas.sections_in(course_a)[0].id
        students_a = [person("mixed" if i == 2 else "lower") for i in range(6)]
        for i, student in enumerate(students_a):
            canvas.enroll(student, course_a, default_a if i < 3 else section_2)
        canvas.enroll(students_a[0], course_a, section_2)  # in both sections
        essay = canvas.create_assignment(course_a, "Essay", 10.0)
        lab = canvas.create_assignment(course_a, "Lab report", 20.0)
        quiz_id, quiz_assignment = canvas.create_classic_quiz(course_a, "Unit quiz", 5.0)
        new_quiz = canvas.create_new_quiz(course_a, "Final check", 10.0)
        for student in students_a:
            for assignment, points in ((essay, 10), (lab, 20), (quiz_assignment, 5)):
                if rng.random() < 0.6:
                    canvas.submit(course_a, assignment, student)
                    canvas.grade(course_a, assignment, student, rng.randint(0, points))
        week_1 = canvas.create_module(course_a, "Week 1")
        read = canvas.add_module_item(week_1, "Reading", "Page", requirement="must_view")
        canvas.add_module_item(
            week_1, "Essay", "Assignment", essay, requirement="min_score", min_score=6.0
        )
        week_2 = canvas.create_module(course_a, "Week 2")
        canvas.add_module_item(week_2, "Lab", "Assignment", lab, requirement="must_submit")
        canvas.add_module_item(week_2, "Intro", "SubHeader")
        for student in students_a[:3]:
            canvas.complete_module_item(read, student)
        rules[course_a] = (
            CourseGrade(badge("Course grade 70%"), 70.0),
            AssignmentScore(badge("Essay 80%"), essay, min_percent=80.0),
            AssignmentScore(badge("Lab 15 points"), lab, min_points=15.0),
            QuizScore(badge("Unit quiz 60%"), quiz_id, 60.0),
            QuizScore(badge("Final check 50%"), new_quiz, 50.0, new_quizzes=True),
            ModuleCompleted(badge("Week 1 done"), week_1),
            CourseCompleted(badge("Course A complete")),
        )

        # Course B: modules only
        course_b = canvas.create_course(f"{fake.catch_phrase()} (B)")
        canvas.enroll(teacher, course_b, type="TeacherEnrollment")
        students_b = [person() for _ in range(4)]
        for student in students_b:
            canvas.enroll(student, course_b)
        orientation = canvas.create_module(course_b, "Orientation")
        tour = canvas.add_module_item(orientation, "Tour", "Page", requirement="must_view")
        pledge = canvas.add_module_item(orientation, "Pledge", "Page", requirement="must_mark_done")
        for student in students_b[:2]:
            canvas.complete_module_item(tour, student)
        canvas.complete_module_item(pledge, students_b[0])
        rules[course_b] = (
            ModuleCompleted(badge("Orientation done"), orientation),
            CourseCompleted(badge("Course B complete")),
        )

        # Course C: one assignment
        course_c = canvas.create_course(f"{fake.catch_phrase()} (C)")
        canvas.enroll(teacher, course_c, type="TeacherEnrollment")
        students_c = [person() for _ in range(3)]
        for student in students_c:
            canvas.enroll(student, course_c)
        no_email = canvas.create_user(fake.name(), None)  # SIS user without an address
        canvas.enroll(no_email, course_c)
        canvas.enroll(person(), course_c, state="invited")  # not yet accepted
        project = canvas.create_assignment(course_c, "Project", 100.0)
        for student in [*students_c, no_email]:
            canvas.grade(course_c, project, student, rng.randint(40, 100))
        rules[course_c] = (
            AssignmentScore(badge("Project 75%"), project, min_percent=75.0),
            CourseGrade(badge("Course C 60%"), 60.0),
        )

        canvas.refresh_replica()
        return world, rules
