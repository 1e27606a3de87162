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


def needs_modules(rules: tuple[AwardRule, ...]) -> bool:
    """Module progress is one request per student, so it is read only when a rule uses it."""
    return any(isinstance(r, ModuleCompleted | CourseCompleted) for r in rules)


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


def _scored(
    snapshot: CourseSnapshot,
    assignment_id: int,
    min_points: float | None,
    min_percent: float | None,
) -> frozenset[int]:
    assignment = snapshot.assignments.get(assignment_id)
    if assignment is None:
        return frozenset()
    if min_points is not None:
        bar = min_points
    elif assignment.points_possible is None or assignment.points_possible <= 0:
        return frozenset()  # a percentage of nothing cannot be reached
    else:
        bar = assignment.points_possible * (min_percent or 0.0) / 100.0
    earned = set()
    for uid in snapshot.students:
        sub = snapshot.submissions.get((uid, assignment_id))
        if sub is not None and not sub.excused and sub.score is not None and sub.score >= bar:
            earned.add(uid)
    return frozenset(earned)


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
