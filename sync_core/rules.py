"""Award rules: when a student has *earned* a badge, judged over one course snapshot.

A rule names the Credentials badge class it awards and a Canvas criterion. Rules are pure
functions of a :class:`~sync_core.canvas.CourseSnapshot`; nothing here knows about
requests, time or the outbox. "Earned" is level-triggered: it is recomputed from the whole
snapshot every round, so a missed event can never leave a student un-earned for good.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sync_core.canvas import CourseSnapshot


@dataclass(frozen=True)
class ModuleCompleted:
    """Awarded when the student's progress shows the module ``completed``."""

    badge_class: str
    module_id: int


@dataclass(frozen=True)
class AssignmentScore:
    """Awarded for a score on one assignment: at least ``min_points``, or ``min_percent``
    of ``points_possible``. Exactly one threshold is set."""

    badge_class: str
    assignment_id: int
    min_points: float | None = None
    min_percent: float | None = None

    def __post_init__(self) -> None:
        if (self.min_points is None) == (self.min_percent is None):
            raise ValueError("AssignmentScore needs exactly one of min_points or min_percent")


@dataclass(frozen=True)
class QuizScore:
    """Awarded for a percentage on a quiz.

    Classic quizzes are named by their quiz id and found through the quiz's
    ``assignment_id``; New Quizzes exist only as ``external_tool`` assignments, and
    their quiz id *is* the assignment id, so ``new_quizzes=True`` looks it up directly.
    """

    badge_class: str
    quiz_id: int
    min_percent: float
    new_quizzes: bool = False


@dataclass(frozen=True)
class CourseGrade:
    """Awarded when the enrollment's ``current_score`` (a percentage) reaches the bar."""

    badge_class: str
    min_percent: float


@dataclass(frozen=True)
class CourseCompleted:
    """Awarded when every module with completion requirements is completed (and there is
    at least one), which is what Canvas's course progress calls complete."""

    badge_class: str


AwardRule = ModuleCompleted | AssignmentScore | QuizScore | CourseGrade | CourseCompleted

RULE_TYPES: Mapping[str, type[AwardRule]] = {
    "module_completed": ModuleCompleted,
    "assignment_score": AssignmentScore,
    "quiz_score": QuizScore,
    "course_grade": CourseGrade,
    "course_completed": CourseCompleted,
}
_RULE_NAMES = {cls: name for name, cls in RULE_TYPES.items()}


def uses_modules(rule: AwardRule) -> bool:
    """Whether ``rule`` is judged on module progress (read per student)."""
    return isinstance(rule, ModuleCompleted | CourseCompleted)


def needs_modules(rules: tuple[AwardRule, ...]) -> bool:
    """Module progress is one request per student, so it is read only when a rule uses it."""
    return any(uses_modules(r) for r in rules)


def needs_quizzes(rules: tuple[AwardRule, ...]) -> bool:
    return any(isinstance(r, QuizScore) and not r.new_quizzes for r in rules)


def earned_by(rule: AwardRule, snapshot: CourseSnapshot) -> frozenset[int]:
    """The user ids among the snapshot's students who meet ``rule`` now."""
    students = snapshot.students
    if isinstance(rule, CourseGrade):
        return frozenset(
            uid
            for uid, s in students.items()
            if s.current_score is not None and s.current_score >= rule.min_percent
        )
    if isinstance(rule, ModuleCompleted):
        return frozenset(
            uid for uid in students if snapshot.module_state(uid, rule.module_id) == "completed"
        )
    if isinstance(rule, CourseCompleted):
        return frozenset(uid for uid in students if snapshot.course_completed(uid))
    if isinstance(rule, AssignmentScore):
        return _scored(snapshot, rule.assignment_id, rule.min_points, rule.min_percent)
    assignment_id = rule.quiz_id if rule.new_quizzes else snapshot.quiz_assignment(rule.quiz_id)
    if assignment_id is None:
        return frozenset()
    return _scored(snapshot, assignment_id, None, rule.min_percent)


def meets(rule: AwardRule, snapshot: CourseSnapshot, user_id: int) -> bool:
    """Whether one student meets ``rule`` now: :func:`earned_by` for a single student, for
    rounds that judge only the students whose data changed."""
    if isinstance(rule, CourseGrade):
        student = snapshot.students.get(user_id)
        score = None if student is None else student.current_score
        return score is not None and score >= rule.min_percent
    if isinstance(rule, ModuleCompleted):
        return snapshot.module_state(user_id, rule.module_id) == "completed"
    if isinstance(rule, CourseCompleted):
        return snapshot.course_completed(user_id)
    if isinstance(rule, AssignmentScore):
        bar = _bar(snapshot, rule.assignment_id, rule.min_points, rule.min_percent)
        assignment_id: int | None = rule.assignment_id
    else:
        assignment_id = rule.quiz_id if rule.new_quizzes else snapshot.quiz_assignment(rule.quiz_id)
        bar = (
            None if assignment_id is None else _bar(snapshot, assignment_id, None, rule.min_percent)
        )
    if bar is None or assignment_id is None:
        return False
    score = snapshot.usable_scores().get(assignment_id, {}).get(user_id)
    return score is not None and score >= bar


def _bar(
    snapshot: CourseSnapshot,
    assignment_id: int,
    min_points: float | None,
    min_percent: float | None,
) -> float | None:
    """The score that earns the badge on this assignment, or ``None`` when none can."""
    assignment = snapshot.assignments.get(assignment_id)
    if assignment is None:
        return None
    if min_points is not None:
        return min_points
    if assignment.points_possible is None or assignment.points_possible <= 0:
        return None  # a percentage of nothing cannot be reached
    return assignment.points_possible * (min_percent or 0.0) / 100.0


def _scored(
    snapshot: CourseSnapshot,
    assignment_id: int,
    min_points: float | None,
    min_percent: float | None,
) -> frozenset[int]:
    bar = _bar(snapshot, assignment_id, min_points, min_percent)
    if bar is None:
        return frozenset()
    students = snapshot.students
    # Probed in one C-level pass (map), as this runs for every student under every score
    # rule of a full round.
    found = map(snapshot.usable_scores().get(assignment_id, {}).get, students)
    return frozenset(
        uid
        for uid, score in zip(students, found, strict=True)
        if score is not None and score >= bar
    )


def rule_to_dict(rule: AwardRule) -> dict[str, object]:
    out: dict[str, object] = {"type": _RULE_NAMES[type(rule)]}
    out.update({k: v for k, v in vars(rule).items() if v is not None})
    return out


def rule_from_dict(data: Mapping[str, object]) -> AwardRule:
    fields = dict(data)
    kind = fields.pop("type", None)
    if not isinstance(kind, str) or kind not in RULE_TYPES:
        raise ValueError(f"unknown award rule type {kind!r}; expected one of {sorted(RULE_TYPES)}")
    return RULE_TYPES[kind](**fields)  # type: ignore[arg-type]
