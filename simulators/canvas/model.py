"""The simulated Canvas LMS: plain mutable state and the mutations a course sees.

This is the *source of truth* the fake REST API renders and the world's oracle reads. It
keeps Canvas's awkward facts on purpose: several enrollment rows per user, bulk course
conclusion that touches nothing but the state, placeholder submissions, emails that differ
only in case, and a read replica that lags the primary.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

from simulators.clock import VirtualClock

K = TypeVar("K")
V = TypeVar("V")

ENROLLMENT_TYPES: Final = (
    "StudentEnrollment",
    "TeacherEnrollment",
    "TaEnrollment",
    "ObserverEnrollment",
)
ENROLLMENT_STATES: Final = (
    "invited",
    "active",
    "inactive",
    "completed",
    "deleted",
    "rejected",
    "creation_pending",
)
COURSE_STATES: Final = ("available", "unpublished", "completed", "deleted")
REQUIREMENT_TYPES: Final = ("must_view", "must_mark_done", "must_submit", "min_score")

# Id bases differ per kind so that an id used as the wrong kind finds nothing.
_ID_BASES: Final = {
    "course": 101,
    "section": 201,
    "quiz": 301,
    "module": 401,
    "item": 801,
    "user": 1001,
    "enrollment": 5001,
    "assignment": 7001,
    "submission": 90001,
}


@dataclass(frozen=True)
class RateLimit:
    """Canvas's throttle settings (fact sheet section 3): a leaky bucket per token that
    drains ``outflow`` cost units a second, each request first reserving ``up_front`` and
    being throttled past ``high_water``. These are the source defaults; hosted values are
    not published, so the state machine also draws tighter ones."""

    high_water: float = 600.0
    outflow: float = 10.0
    up_front: float = 50.0

    def __post_init__(self) -> None:
        if not 0 <= self.up_front < self.high_water or self.outflow <= 0:
            raise ValueError(f"{self}: need 0 <= up_front < high_water and outflow > 0")


@dataclass
class Course:
    id: int
    name: str
    course_code: str
    workflow_state: str
    created_at: float
    updated_at: float


@dataclass
class Section:
    id: int
    course_id: int
    name: str


@dataclass
class User:
    id: int
    name: str
    sortable_name: str
    short_name: str
    login_id: str
    email: str | None
    created_at: float
    email_history: list[str] = field(default_factory=list)


@dataclass
class Enrollment:
    id: int
    user_id: int
    course_id: int
    section_id: int
    type: str
    state: str
    created_at: float
    updated_at: float


@dataclass
class Assignment:
    id: int
    course_id: int
    name: str
    position: int
    points_possible: float | None
    submission_types: tuple[str, ...]
    published: bool
    created_at: float
    updated_at: float
    deleted: bool = False
    quiz_id: int | None = None
    is_quiz_lti_assignment: bool = False

    @property
    def counts_for_grade(self) -> bool:
        """Canvas's current score only sees published, live assignments worth points."""
        return (
            self.published
            and not self.deleted
            and self.points_possible is not None
            and self.points_possible > 0
        )


@dataclass
class Quiz:
    id: int
    course_id: int
    title: str
    assignment_id: int
    points_possible: float | None
    published: bool
    created_at: float
    quiz_type: str = "assignment"
    deleted: bool = False


@dataclass
class Submission:
    id: int
    course_id: int
    assignment_id: int
    user_id: int
    score: float | None = None
    excused: bool = False
    workflow_state: str = "unsubmitted"
    submitted_at: float | None = None
    graded_at: float | None = None
    attempt: int | None = None


@dataclass(frozen=True)
class Requirement:
    type: str
    min_score: float | None = None


@dataclass
class ModuleItem:
    id: int
    module_id: int
    position: int
    title: str
    type: str
    content_id: int | None
    requirement: Requirement | None


@dataclass
class Module:
    id: int
    course_id: int
    name: str
    position: int
    created_at: float
    items: list[int] = field(default_factory=list)


class Canvas:
    """All Canvas state, with per-course indexes so each API request stays linear in the
    size of one course."""

    def __init__(self, clock: VirtualClock, replica_lag: float = 120.0) -> None:
        self.clock = clock
        self.replica_lag = replica_lag
        self.rate_limit = RateLimit()
        self.courses: dict[int, Course] = {}
        self.sections: dict[int, Section] = {}
        self.users: dict[int, User] = {}
        self.enrollments: dict[int, Enrollment] = {}
        self.assignments: dict[int, Assignment] = {}
        self.quizzes: dict[int, Quiz] = {}
        self.submissions: dict[tuple[int, int], Submission] = {}  # (assignment, user)
        self.modules: dict[int, Module] = {}
        self.items: dict[int, ModuleItem] = {}
        self.completions: dict[tuple[int, int], float] = {}  # (item, user) -> completed_at
        self._next_id = dict(_ID_BASES)
        self._by_course: dict[str, dict[int, list[int]]] = {
            kind: {} for kind in ("section", "enrollment", "assignment", "quiz", "module")
        }
        self._course_submissions: dict[int, list[Submission]] = {}
        self._replica: Canvas | None = None
        self.writes = 0  # mutations so far: lets observers skip work when nothing changed
        # The value of ``writes`` at each course's last change (its rows, grades, modules):
        # lets observers of one course skip work when only others changed.
        self.course_writes: dict[int, int] = {}
        self._derived: dict[Hashable, object] = {}
        self._derived_at = 0
        self._replica_at = clock.now
        self.refresh_replica()

    # ------------------------------------------------------------------ replica

    def refresh_replica(self) -> None:
        """Snapshot the primary; stale reads are then real older data, never invented."""
        self._replica = self._snapshot()
        self._replica_at = self.clock.now

    def _snapshot(self) -> Canvas:
        """A copy sharing no mutable object with the primary (but sharing the clock).

        Entity by entity rather than ``copy.deepcopy``, which is some twenty times slower
        and would make every replica refresh of a large course a noticeable pause.
        """
        snap = Canvas.__new__(Canvas)
        snap.clock = self.clock
        snap.replica_lag = self.replica_lag
        snap.rate_limit = self.rate_limit  # frozen: shared safely
        snap.writes = self.writes
        snap.course_writes = dict(self.course_writes)
        snap.courses = _clone_values(self.courses)
        snap.sections = _clone_values(self.sections)
        snap.users = _clone_values(self.users)
        for user in snap.users.values():
            user.email_history = list(user.email_history)
        snap.enrollments = _clone_values(self.enrollments)
        snap.assignments = _clone_values(self.assignments)
        snap.quizzes = _clone_values(self.quizzes)
        snap.submissions = _clone_values(self.submissions)
        snap.modules = _clone_values(self.modules)
        for module in snap.modules.values():
            module.items = list(module.items)
        snap.items = _clone_values(self.items)
        snap.completions = dict(self.completions)
        snap._next_id = dict(self._next_id)
        snap._by_course = {
            kind: {course: list(ids) for course, ids in per_course.items()}
            for kind, per_course in self._by_course.items()
        }
        snap._course_submissions = {
            course: [snap.submissions[(s.assignment_id, s.user_id)] for s in subs]
            for course, subs in self._course_submissions.items()
        }
        snap._derived = {}
        snap._derived_at = snap.writes
        snap._replica = None
        snap._replica_at = self._replica_at
        return snap

    def replica(self) -> Canvas:
        """The state as of the last :meth:`refresh_replica`; a replica is its own replica."""
        return self if self._replica is None else self._replica

    def _write_time(self, course_id: int | None) -> float:
        """Every mutation goes through here, naming the course it changes (``None``: a
        user's own data): a replica older than ``replica_lag`` catches up *before* the
        write, so it always lags the primary by whole writes."""
        now = self.clock.now
        if now - self._replica_at >= self.replica_lag:
            self.refresh_replica()
        self.writes += 1
        if course_id is not None:
            self.course_writes[course_id] = self.writes
        return now

    def _new_id(self, kind: str) -> int:
        value = self._next_id[kind]
        self._next_id[kind] = value + 1
        return value

    def _index(self, kind: str, course_id: int, entity_id: int) -> None:
        self._by_course[kind].setdefault(course_id, []).append(entity_id)

    def derived(self, key: Hashable, compute: Callable[[], V]) -> V:
        """``compute()``, kept until the next write: a view of the state (a course's rows
        in an API's sort order, say) that every request would otherwise rebuild. Every
        mutation goes through :meth:`_write_time`, which counts it in ``writes``, so a
        view computed at the same count is the one ``compute`` would give now. Callers
        must treat the value as read-only."""
        if self._derived_at != self.writes:
            self._derived.clear()
            self._derived_at = self.writes
        if key in self._derived:
            return cast(V, self._derived[key])
        value = compute()
        self._derived[key] = value
        return value

    # ------------------------------------------------------------------ lookups

    def sections_in(self, course_id: int) -> list[Section]:
        return [self.sections[i] for i in self._by_course["section"].get(course_id, [])]

    def enrollments_in(self, course_id: int) -> list[Enrollment]:
        return [self.enrollments[i] for i in self._by_course["enrollment"].get(course_id, [])]

    def assignments_in(self, course_id: int) -> list[Assignment]:
        """Live (not deleted) assignments, published or not, in position order."""
        ids = self._by_course["assignment"].get(course_id, [])
        return [self.assignments[i] for i in ids if not self.assignments[i].deleted]

    def quizzes_in(self, course_id: int) -> list[Quiz]:
        ids = self._by_course["quiz"].get(course_id, [])
        return [self.quizzes[i] for i in ids if not self.quizzes[i].deleted]

    def modules_in(self, course_id: int) -> list[Module]:
        return [self.modules[i] for i in self._by_course["module"].get(course_id, [])]

    def submissions_in(self, course_id: int) -> list[Submission]:
        """Every submission row of the course, in id order (rows are never removed)."""
        return self._course_submissions.get(course_id, [])

    def open_courses(self) -> list[int]:
        """Courses that still take enrolments and work: published, not concluded or deleted."""
        return [c.id for c in self.courses.values() if c.workflow_state == "available"]

    def live_course(self, course_id: int) -> Course | None:
        """The course unless unknown or deleted: Canvas's API answers 404 for both."""
        course = self.courses.get(course_id)
        return None if course is None or course.workflow_state == "deleted" else course

    def current_score(self, course_id: int, user_id: int) -> float | None:
        """Canvas's ``current_score``: graded work only, as a percentage of its points."""
        return self.scores(course_id, user_id)[0]

    def final_score(self, course_id: int, user_id: int) -> float | None:
        """Canvas's ``final_score``: like the current score, but ungraded work counts as 0."""
        return self.scores(course_id, user_id)[1]

    def scores(self, course_id: int, user_id: int) -> tuple[float | None, float | None]:
        """(current, final) score, kept until the next write: enrollment pages and the
        world's oracle ask for every student's, round after round."""
        memo: dict[int, tuple[float | None, float | None]]
        memo = self.derived(("scores", course_id), dict)
        found = memo.get(user_id)
        if found is None:
            found = memo[user_id] = self._scores(course_id, user_id)
        return found

    def _scores(self, course_id: int, user_id: int) -> tuple[float | None, float | None]:
        """(current, final) score in one pass over the assignments that count."""
        current_earned = current_possible = final_earned = final_possible = 0.0
        submissions = self.submissions
        for assignment in self._graded_assignments(course_id):
            sub = submissions.get((assignment.id, user_id))
            points = assignment.points_possible or 0.0
            if sub is None:
                final_possible += points
                continue
            if sub.excused:
                continue
            final_possible += points
            if sub.score is not None:
                final_earned += sub.score
                current_earned += sub.score
                current_possible += points
        return _percent(current_earned, current_possible), _percent(final_earned, final_possible)

    def _graded_assignments(self, course_id: int) -> list[Assignment]:
        """The live assignments that count for a grade, in position order."""
        return self.derived(
            ("graded-assignments", course_id),
            lambda: [a for a in self.assignments_in(course_id) if a.counts_for_grade],
        )

    def module_progress(self, module_id: int, user_id: int) -> tuple[str, float | None]:
        """(state, completed_at) of a module for a student.

        ``completed`` needs at least one requirement and all of them met; a module without
        requirements stays ``unlocked`` forever, which is why such modules earn nothing.
        Kept until the next write: every round reads every student's progress.
        """
        memo: dict[int, tuple[str, float | None]] = self.derived(("progress", module_id), dict)
        found = memo.get(user_id)
        if found is None:
            found = memo[user_id] = self._module_progress(module_id, user_id)
        return found

    def _module_progress(self, module_id: int, user_id: int) -> tuple[str, float | None]:
        required = self.required_items(module_id)
        completions = self.completions
        done = [
            completions[(item_id, user_id)]
            for item_id in required
            if (item_id, user_id) in completions
        ]
        if required and len(done) == len(required):
            return "completed", max(done)
        return ("started" if done else "unlocked"), None

    def required_items(self, module_id: int) -> tuple[int, ...]:
        """Ids of the module's items that carry a completion requirement, in item order."""

        def compute() -> tuple[int, ...]:
            items = self.items
            return tuple(i for i in self.modules[module_id].items if items[i].requirement)

        return self.derived(("required", module_id), compute)

    # ------------------------------------------------------------------ mutations

    def create_course(self, name: str, workflow_state: str = "available") -> int:
        """A course comes with its default section, as in Canvas."""
        if workflow_state not in COURSE_STATES:
            raise ValueError(f"unknown course state {workflow_state!r}")
        now = self._write_time(None)
        course_id = self._new_id("course")
        self.course_writes[course_id] = self.writes
        code = f"C{course_id}"
        self.courses[course_id] = Course(course_id, name, code, workflow_state, now, now)
        self.create_section(course_id, name)
        return course_id

    def create_section(self, course_id: int, name: str) -> int:
        self._course(course_id)
        self._write_time(course_id)
        section_id = self._new_id("section")
        self.sections[section_id] = Section(section_id, course_id, name)
        self._index("section", course_id, section_id)
        return section_id

    def create_user(self, name: str, email: str | None, login_id: str | None = None) -> int:
        now = self._write_time(None)
        user_id = self._new_id("user")
        first, _, last = name.rpartition(" ")
        sortable = f"{last}, {first}" if first else name
        user = User(user_id, name, sortable, name, login_id or f"user{user_id}", email, now)
        if email is not None:
            user.email_history.append(email)
        self.users[user_id] = user
        return user_id

    def enroll(
        self,
        user_id: int,
        course_id: int,
        section_id: int | None = None,
        type: str = "StudentEnrollment",
        state: str = "active",
    ) -> int:
        """Add one enrollment row; a second row for the same user and course is allowed
        (another section or role), exactly as Canvas allows it."""
        course = self._course(course_id)
        if course.workflow_state in ("completed", "deleted"):
            raise ValueError("Can't add an enrollment to a concluded course.")
        if user_id not in self.users:
            raise KeyError(f"unknown user {user_id}")
        if type not in ENROLLMENT_TYPES or state not in ENROLLMENT_STATES:
            raise ValueError(f"unknown enrollment type/state {type!r}/{state!r}")
        sections = self._by_course["section"][course_id]
        if section_id is None:
            section_id = sections[0]
        elif section_id not in sections:
            raise ValueError(f"section {section_id} is not in course {course_id}")
        now = self._write_time(course_id)
        enrollment_id = self._new_id("enrollment")
        self.enrollments[enrollment_id] = Enrollment(
            enrollment_id, user_id, course_id, section_id, type, state, now, now
        )
        self._index("enrollment", course_id, enrollment_id)
        if type == "StudentEnrollment":
            for assignment in self.assignments_in(course_id):
                self._ensure_submission(assignment, user_id)
        return enrollment_id

    def set_enrollment_state(self, enrollment_id: int, state: str) -> None:
        if state not in ENROLLMENT_STATES:
            raise ValueError(f"unknown enrollment state {state!r}")
        enrollment = self.enrollments[enrollment_id]
        enrollment.updated_at = self._write_time(enrollment.course_id)
        enrollment.state = state

    def conclude_course(self, course_id: int) -> None:
        """Canvas's ``update_all``: active and invited rows become completed in bulk, with
        no per-row callbacks, so nothing else about them (not even ``updated_at``) moves."""
        course = self._course(course_id)
        course.updated_at = self._write_time(course_id)
        course.workflow_state = "completed"
        for enrollment in self.enrollments_in(course_id):
            if enrollment.state in ("active", "invited"):
                enrollment.state = "completed"

    def delete_course(self, course_id: int) -> None:
        """Deleting a course deletes every enrollment row in it, as Canvas does."""
        course = self._course(course_id)
        now = self._write_time(course_id)
        course.updated_at = now
        course.workflow_state = "deleted"
        for enrollment in self.enrollments_in(course_id):
            if enrollment.state != "deleted":
                enrollment.state = "deleted"
                enrollment.updated_at = now

    def change_email(self, user_id: int, email: str | None) -> None:
        self._write_time(None)
        user = self.users[user_id]
        user.email = email
        if email is not None:
            user.email_history.append(email)

    def create_assignment(
        self,
        course_id: int,
        name: str,
        points_possible: float | None,
        submission_types: tuple[str, ...] = ("online_upload",),
        published: bool = True,
    ) -> int:
        return self._add_assignment(course_id, name, points_possible, submission_types, published)

    def create_classic_quiz(
        self, course_id: int, title: str, points_possible: float | None, published: bool = True
    ) -> tuple[int, int]:
        """A graded classic quiz is two records: the quiz and its ``online_quiz`` assignment.
        Returns (quiz id, assignment id)."""
        assignment_id = self._add_assignment(
            course_id, title, points_possible, ("online_quiz",), published
        )
        quiz_id = self._new_id("quiz")
        now = self.clock.now
        self.quizzes[quiz_id] = Quiz(
            quiz_id, course_id, title, assignment_id, points_possible, published, now
        )
        self._index("quiz", course_id, quiz_id)
        self.assignments[assignment_id].quiz_id = quiz_id
        return quiz_id, assignment_id

    def create_new_quiz(
        self, course_id: int, title: str, points_possible: float | None, published: bool = True
    ) -> int:
        """A New Quiz is only an ``external_tool`` assignment; its quiz id is that id."""
        assignment_id = self._add_assignment(
            course_id, title, points_possible, ("external_tool",), published
        )
        self.assignments[assignment_id].is_quiz_lti_assignment = True
        return assignment_id

    def delete_assignment(self, assignment_id: int) -> None:
        """Deleting a quiz's assignment deletes the quiz too; submissions stay in storage."""
        assignment = self.assignments[assignment_id]
        assignment.updated_at = self._write_time(assignment.course_id)
        assignment.deleted = True
        if assignment.quiz_id is not None:
            self.quizzes[assignment.quiz_id].deleted = True

    def submit(self, course_id: int, assignment_id: int, user_id: int) -> None:
        sub = self._submission(course_id, assignment_id, user_id)
        sub.submitted_at = self._write_time(course_id)
        sub.workflow_state = "submitted"
        sub.attempt = (sub.attempt or 0) + 1

    def grade(self, course_id: int, assignment_id: int, user_id: int, score: float) -> None:
        """Grading (or regrading) moves ``graded_at``, which drives ``graded_since``."""
        sub = self._submission(course_id, assignment_id, user_id)
        sub.graded_at = self._write_time(course_id)
        sub.score = float(score)
        sub.excused = False
        sub.workflow_state = "graded"

    def excuse(self, course_id: int, assignment_id: int, user_id: int) -> None:
        """Excusing clears the score and counts as a grading event."""
        sub = self._submission(course_id, assignment_id, user_id)
        sub.graded_at = self._write_time(course_id)
        sub.score = None
        sub.excused = True
        sub.workflow_state = "graded"

    def create_module(self, course_id: int, name: str) -> int:
        self._course(course_id)
        now = self._write_time(course_id)
        module_id = self._new_id("module")
        position = len(self._by_course["module"].get(course_id, [])) + 1
        self.modules[module_id] = Module(module_id, course_id, name, position, now)
        self._index("module", course_id, module_id)
        return module_id

    def add_module_item(
        self,
        module_id: int,
        title: str,
        type: str = "Assignment",
        content_id: int | None = None,
        requirement: str | None = None,
        min_score: float | None = None,
    ) -> int:
        """Add an item, optionally with a completion requirement (``min_score`` only for the
        ``min_score`` type)."""
        module = self.modules[module_id]
        if requirement is not None and requirement not in REQUIREMENT_TYPES:
            raise ValueError(f"unknown completion requirement {requirement!r}")
        if (requirement == "min_score") != (min_score is not None):
            raise ValueError("min_score goes with, and only with, a min_score requirement")
        self._write_time(module.course_id)
        item_id = self._new_id("item")
        req = Requirement(requirement, min_score) if requirement is not None else None
        position = len(module.items) + 1
        self.items[item_id] = ModuleItem(item_id, module_id, position, title, type, content_id, req)
        module.items.append(item_id)
        return item_id

    def complete_module_item(self, item_id: int, user_id: int) -> None:
        """Record that a student met an item's requirement; the first completion counts."""
        if item_id not in self.items or user_id not in self.users:
            raise KeyError(f"unknown item {item_id} or user {user_id}")
        course_id = self.modules[self.items[item_id].module_id].course_id
        now = self._write_time(course_id)
        self.completions.setdefault((item_id, user_id), now)

    # ------------------------------------------------------------------ internals

    def _course(self, course_id: int) -> Course:
        course = self.courses.get(course_id)
        if course is None:
            raise KeyError(f"unknown course {course_id}")
        return course

    def _add_assignment(
        self,
        course_id: int,
        name: str,
        points_possible: float | None,
        submission_types: tuple[str, ...],
        published: bool,
    ) -> int:
        self._course(course_id)
        now = self._write_time(course_id)
        assignment_id = self._new_id("assignment")
        position = len(self._by_course["assignment"].get(course_id, [])) + 1
        assignment = Assignment(
            assignment_id,
            course_id,
            name,
            position,
            None if points_possible is None else float(points_possible),
            tuple(submission_types),
            published,
            now,
            now,
        )
        self.assignments[assignment_id] = assignment
        self._index("assignment", course_id, assignment_id)
        students = {
            e.user_id for e in self.enrollments_in(course_id) if e.type == "StudentEnrollment"
        }
        for user_id in sorted(students):
            self._ensure_submission(assignment, user_id)
        return assignment_id

    def _ensure_submission(self, assignment: Assignment, user_id: int) -> None:
        """Canvas keeps a row for every (student, assignment) pair from the start; creating
        it eagerly gives placeholders stable ids for the id-ordered bookmark pages."""
        key = (assignment.id, user_id)
        if key in self.submissions:
            return
        sub = Submission(self._new_id("submission"), assignment.course_id, assignment.id, user_id)
        self.submissions[key] = sub
        self._course_submissions.setdefault(assignment.course_id, []).append(sub)

    def _submission(self, course_id: int, assignment_id: int, user_id: int) -> Submission:
        assignment = self.assignments.get(assignment_id)
        if assignment is None or assignment.course_id != course_id or assignment.deleted:
            raise ValueError(f"assignment {assignment_id} is not live in course {course_id}")
        sub = self.submissions.get((assignment_id, user_id))
        if sub is None:
            raise ValueError(f"user {user_id} is not a student of course {course_id}")
        return sub


def _percent(earned: float, possible: float) -> float | None:
    return round(earned / possible * 100, 2) if possible > 0 else None


def _clone_values(entities: dict[K, V]) -> dict[K, V]:
    """Shallow copies of plain (non-slotted) dataclass entities: their fields are
    immutable values, apart from the lists that :meth:`Canvas._snapshot` copies itself."""
    out: dict[K, V] = {}
    for key, entity in entities.items():
        clone: Any = object.__new__(type(entity))
        clone.__dict__.update(entity.__dict__)
        out[key] = clone
    return out
