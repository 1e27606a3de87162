"""Canvas values the engine reasons about, and the parsing of Canvas REST records into them.

The engine receives records exactly as Canvas sent them. Each parser either returns a value
or raises :class:`Malformed` with a reason; the caller quarantines that one record and the
rest of the course keeps syncing. Parsers read only the fields a sync needs and tolerate the
rest, since Canvas adds fields over time.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

# An active student enrollment makes a group member. A completed one (the course or the
# student concluded) no longer does, but what the student earned still counts: concluding a
# course must not cost anyone a badge. Invited, inactive, deleted, rejected and
# creation_pending rows count for neither.
ACTIVE = "active"
COMPLETED = "completed"
STUDENT_ENROLLMENT = "StudentEnrollment"
# Every value Canvas documents. Anything else is quarantined rather than read as "not a
# student": that reading would remove a member over a value nobody understood.
ENROLLMENT_STATES = frozenset(
    {"active", "invited", "creation_pending", "inactive", "completed", "deleted", "rejected"}
)
ENROLLMENT_TYPES = frozenset(
    {
        STUDENT_ENROLLMENT,
        "TeacherEnrollment",
        "TaEnrollment",
        "DesignerEnrollment",
        "ObserverEnrollment",
        "StudentViewEnrollment",
    }
)


class Malformed(ValueError):
    """A record that cannot be understood; its message is the quarantine reason."""


# Reasons quote the offending value, but a value is whatever the API sent: a megabyte string
# or a list nested a thousand deep would make the reason (kept in the state and printed by
# ``credsync sync``) as big as the garbage. reprlib cuts long strings, long lists and deep nests.
_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 80
_SHOW.maxlevel = 3


def shown(value: object) -> str:
    """``repr(value)``, bounded in size, for a quarantine reason."""
    return _SHOW.repr(value)


class Student(NamedTuple):
    """A user with an active or completed student enrollment in the course.

    Keyed by user id, never by enrollment id: one user may hold several enrollment rows
    (sections, roles), and they all fold into this one value; ``active`` if any row is.
    An immutable named tuple rather than a frozen dataclass: one is built per student per
    round, and a tuple builds several times faster.
    """

    user_id: int
    name: str
    email: str | None = None
    current_score: float | None = None
    active: bool = True


class Assignment(NamedTuple):
    """An assignment as read (a named tuple, as :class:`Student`: read every round)."""

    assignment_id: int
    points_possible: float | None
    quiz_id: int | None = None
    is_new_quiz: bool = False


@dataclass(frozen=True)
class Submission:
    user_id: int
    assignment_id: int
    score: float | None
    excused: bool
    graded_at: float | None


@dataclass
class CourseSnapshot:
    """Everything read from Canvas for one course in one round (submissions merged with
    earlier rounds when the read was incremental)."""

    students: dict[int, Student] = field(default_factory=dict)
    assignments: dict[int, Assignment] = field(default_factory=dict)
    quizzes: dict[int, int] = field(default_factory=dict)  # classic quiz id -> assignment id
    # assignment id -> user id -> the score a rule may count: graded and not excused. The
    # engine parses records straight into it (one float per submission, no object built;
    # one small table per assignment rather than one huge one keyed by pairs, which stays
    # in the processor's caches far longer); a reader that keeps Submission values fills
    # ``submissions`` instead (see usable_scores).
    scores: dict[int, dict[int, float]] = field(default_factory=dict)
    submissions: dict[tuple[int, int], Submission] = field(default_factory=dict)
    # user id -> module id -> state; absent user means progress was not read.
    modules: dict[int, dict[int, str]] = field(default_factory=dict)
    # module ids known to carry completion requirements, per user reading
    required_modules: dict[int, frozenset[int]] = field(default_factory=dict)

    def usable_scores(self) -> dict[int, dict[int, float]]:
        """What the rules judge: ``scores``, or when ``submissions`` were kept instead, the
        scores of those that are graded and not excused."""
        if not self.submissions:
            return self.scores
        table: dict[int, dict[int, float]] = {}
        for (uid, aid), s in self.submissions.items():
            if s.score is not None and not s.excused:
                table.setdefault(aid, {})[uid] = s.score
        return table

    def module_state(self, user_id: int, module_id: int) -> str | None:
        return self.modules.get(user_id, {}).get(module_id)

    def course_completed(self, user_id: int) -> bool:
        required = self.required_modules.get(user_id, frozenset())
        states = self.modules.get(user_id, {})
        return bool(required) and all(states.get(m) == "completed" for m in required)

    def quiz_assignment(self, quiz_id: int) -> int | None:
        return self.quizzes.get(quiz_id)


def _mapping(record: object) -> Mapping[str, object]:
    if type(record) is dict:  # what JSON decodes to: skips the slow ABC check (hot path)
        return record
    if not isinstance(record, Mapping):
        raise Malformed(f"expected a JSON object, got {type(record).__name__}")
    return record


def _int(record: Mapping[str, object], key: str) -> int:
    value = record.get(key)
    if type(value) is int and 0 < value < 2**63:  # the common case, checked cheaply first
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"{key!r} must be an integer id, got {shown(value)}")
    if not 0 < value < 2**63:
        raise Malformed(f"{key!r} is out of range: {shown(value)}")
    return value


def _opt_int(record: Mapping[str, object], key: str) -> int | None:
    return None if record.get(key) is None else _int(record, key)


def _opt_number(record: Mapping[str, object], key: str) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if type(value) is float and value - value == 0.0:  # finite (inf - inf and NaN are NaN)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"{key!r} must be a number or null, got {shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float, e.g. 10**400
        raise Malformed(f"{key!r} is not a finite number: {shown(value)}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise Malformed(f"{key!r} is not a finite number: {shown(value)}")
    return number


def _str(record: Mapping[str, object], key: str, default: str | None = None) -> str:
    value = record.get(key, default)
    if not isinstance(value, str):
        raise Malformed(f"{key!r} must be a string, got {shown(value)}")
    return value


def parse_time(value: object, key: str = "timestamp") -> float | None:
    """ISO-8601 (``Z`` or an offset) to epoch seconds; ``None`` stays ``None``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{key!r} must be an ISO-8601 string, got {shown(value)}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Malformed(f"{key!r} is not ISO-8601: {shown(value)}") from exc
    if parsed.tzinfo is None:
        raise Malformed(f"{key!r} has no time zone: {shown(value)}")
    return parsed.timestamp()


@dataclass(frozen=True)
class EnrollmentRow:
    user_id: int
    name: str
    student: bool  # a student row that is active or completed
    active: bool
    current_score: float | None


def parse_enrollment(record: object) -> EnrollmentRow:
    rec = _mapping(record)
    user = rec.get("user")
    name = ""
    if isinstance(user, Mapping) and isinstance(user.get("name"), str):
        name = str(user["name"])
    grades = rec.get("grades")
    score = _opt_number(grades, "current_score") if isinstance(grades, Mapping) else None
    state = _str(rec, "enrollment_state")
    kind = _str(rec, "type")
    user_id = _int(rec, "user_id")
    if state not in ENROLLMENT_STATES:
        raise Malformed(f"enrollment of user {user_id}: unknown enrollment_state {shown(state)}")
    if kind not in ENROLLMENT_TYPES:
        raise Malformed(f"enrollment of user {user_id}: unknown type {shown(kind)}")
    return EnrollmentRow(
        user_id=user_id,
        name=name,
        student=kind == STUDENT_ENROLLMENT and state in (ACTIVE, COMPLETED),
        active=state == ACTIVE,
        current_score=score,
    )


def parse_user_email(record: object) -> tuple[int, str | None]:
    """A ``/courses/:id/users`` row as (user id, lowercased primary email or ``None``).

    Emails are compared lowercased because Credentials lowercases recipients on award;
    an absent email (hidden by permissions, invited-only user, SIS user without one) is
    ``None``, not an error: the student is still enrolled, just not yet reachable.
    """
    rec = _mapping(record)
    uid = _int(rec, "id")
    email = rec.get("email")
    if email is None or email == "":
        return uid, None
    if not isinstance(email, str) or "@" not in email:
        raise Malformed(f"user {uid}: 'email' is not an email address: {shown(email)}")
    return uid, email.strip().lower()


def parse_assignment(record: object) -> Assignment:
    rec = _mapping(record)
    types = rec.get("submission_types", [])
    if not isinstance(types, list):
        raise Malformed(f"'submission_types' must be a list, got {shown(types)}")
    is_lti_quiz = rec.get("is_quiz_lti_assignment") is True
    return Assignment(
        assignment_id=_int(rec, "id"),
        points_possible=_opt_number(rec, "points_possible"),
        quiz_id=_opt_int(rec, "quiz_id"),
        is_new_quiz=is_lti_quiz and "external_tool" in types,
    )


def parse_quiz(record: object) -> tuple[int, int | None]:
    """A classic quiz as (quiz id, its assignment id or ``None`` for practice quizzes)."""
    rec = _mapping(record)
    return _int(rec, "id"), _opt_int(rec, "assignment_id")


def parse_submission(record: object) -> Submission:
    rec = _mapping(record)
    excused = rec.get("excused")
    if excused is not None and not isinstance(excused, bool):
        raise Malformed(f"'excused' must be a boolean or null, got {shown(excused)}")
    # A hidden grade is an *absent* key, a missing grade is null: both mean "no score".
    return Submission(
        user_id=_int(rec, "user_id"),
        assignment_id=_int(rec, "assignment_id"),
        score=_opt_number(rec, "score"),
        excused=bool(excused),
        graded_at=parse_time(rec.get("graded_at"), "graded_at"),
    )


_ID_LIMIT = 2**63
_INF = float("inf")


def parse_enrollments(
    records: Iterable[object],
    into: dict[int, Student],
    known: Mapping[int, Student],
    fresh: set[int],
) -> list[str]:
    """Fold a page of enrollment rows into ``into`` (user id -> :class:`Student`; its email
    is not read here); return the quarantine reasons of the rows that could not be read.

    Rows are validated as :func:`parse_enrollment` does, the common one (a JSON object of
    known state and type, a plain int id, a finite or null grade) inline: every round reads
    the whole roster, so this is most of an incremental round. A student whose row says
    what ``known`` (the last round's students) says is that same value, so an unchanged
    roster builds nothing; the ids of the students built anew are added to ``fresh``. A
    user's rows fold into one student, active if any row is; each row of one user carries
    the same course grade."""
    reasons: list[str] = []
    limit, inf = _ID_LIMIT, _INF
    for record in records:
        if type(record) is dict:
            uid = record.get("user_id")
            state = record.get("enrollment_state")
            kind = record.get("type")
            user = record.get("user")
            grades = record.get("grades")
            name = user.get("name") if type(user) is dict else ""
            score = grades.get("current_score") if type(grades) is dict else None
            if (
                type(uid) is int
                and 0 < uid < limit
                and (score is None or (type(score) is float and -inf < score < inf))
            ):
                if type(name) is not str:
                    name = ""  # as parse_enrollment: a name is cosmetic, never a reason
                if kind == STUDENT_ENROLLMENT and state in (ACTIVE, COMPLETED):
                    active = state == ACTIVE
                    old = known.get(uid)
                    if (  # the common row: a student as the last round knew them
                        old is not None
                        # Student's fields by position (a tuple index is cheaper than a
                        # name): 1 name, 3 current_score, 4 active
                        and old[4] is active
                        and old[3] == score
                        and old[1] == name
                        and uid not in into
                    ):
                        into[uid] = old
                    else:
                        _fold(into, known, fresh, uid, name, score, active)
                    continue
                if (
                    type(state) is str
                    and type(kind) is str
                    and state in ENROLLMENT_STATES
                    and kind in ENROLLMENT_TYPES
                ):
                    continue  # a valid row of no student: a teacher, an invited student
        try:
            row = parse_enrollment(record)
        except Malformed as exc:
            reasons.append(str(exc))
            continue
        if row.student:
            _fold(into, known, fresh, row.user_id, row.name, row.current_score, row.active)
    return reasons


def _fold(
    into: dict[int, Student],
    known: Mapping[int, Student],
    fresh: set[int],
    uid: int,
    name: str,
    score: float | None,
    active: bool,
) -> None:
    """One student row into ``into`` (see :func:`parse_enrollments`)."""
    seen = into.get(uid)
    if seen is not None:  # another row of the same user
        active = active or seen.active
        if seen.current_score is not None:
            score = seen.current_score
    else:
        old = known.get(uid)
        if old is not None and (old.name, old.current_score, old.active) == (name, score, active):
            into[uid] = old
            return
    into[uid] = Student(uid, name, None, score, active)
    fresh.add(uid)


def parse_user_emails(records: Iterable[object], into: dict[int, str | None]) -> list[str]:
    """:func:`parse_user_email` over a page into ``into``, the common row inline; return
    the quarantine reasons."""
    reasons: list[str] = []
    limit = _ID_LIMIT
    for record in records:
        if type(record) is dict:
            uid = record.get("id")
            email = record.get("email")
            if type(uid) is int and 0 < uid < limit and type(email) is str and "@" in email:
                into[uid] = email.strip().lower()
                continue
        try:
            uid, address = parse_user_email(record)
        except Malformed as exc:
            reasons.append(str(exc))
            continue
        into[uid] = address
    return reasons


def parse_submissions(
    records: Iterable[object],
    into: dict[int, dict[int, float]],
    cleared: set[tuple[int, int]],
    times: dict[str, float],
) -> tuple[float | None, list[str]]:
    """Parse a page of submissions: the score a rule may count into ``into`` (assignment ->
    user -> score), the (user, assignment) of one ungraded or excused into ``cleared`` (the
    last record of a pair wins); return (latest ``graded_at``, quarantine reasons).

    The same validation as :func:`parse_submission`, record for record, with the common
    case (a JSON object of plain ints, a finite float or null score, a boolean or null
    ``excused``, a ``graded_at`` already seen) checked inline, and no object built per
    record: this loop is most of a full round, and tens of thousands of new objects a round
    also make the garbage collector walk the whole heap again and again. ``times`` caches
    the ``graded_at`` strings already parsed (grades share few distinct timestamps: bulk
    grading, one SpeedGrader session). Anything else takes :func:`parse_submission`, so a
    record is accepted here exactly when it accepts it, with the same meaning.
    """
    latest: float | None = None
    reasons: list[str] = []
    limit, inf = _ID_LIMIT, _INF
    for record in records:
        if type(record) is dict:
            uid = record.get("user_id")
            aid = record.get("assignment_id")
            score = record.get("score")
            excused = record.get("excused")
            graded = record.get("graded_at")
            if (
                type(uid) is int
                and type(aid) is int
                and 0 < uid < limit
                and 0 < aid < limit
                and (score is None or (type(score) is float and -inf < score < inf))
                and (excused is None or excused is True or excused is False)
            ):
                at = None
                if graded is not None:
                    at = times.get(graded) if type(graded) is str else None
                    if at is None:  # unseen or malformed: the full parser decides
                        latest = _parse_one(record, into, cleared, times, reasons, latest)
                        continue
                    if latest is None or at > latest:
                        latest = at
                if score is None or excused is True:
                    _clear(into, cleared, uid, aid)
                else:
                    table = into.get(aid)
                    if table is None:
                        table = into[aid] = {}
                    table[uid] = score
                    if cleared:
                        cleared.discard((uid, aid))
                continue
        latest = _parse_one(record, into, cleared, times, reasons, latest)
    return latest, reasons


def _clear(
    into: dict[int, dict[int, float]], cleared: set[tuple[int, int]], uid: int, aid: int
) -> None:
    table = into.get(aid)
    if table is not None:
        table.pop(uid, None)
    cleared.add((uid, aid))


def _parse_one(
    record: object,
    into: dict[int, dict[int, float]],
    cleared: set[tuple[int, int]],
    times: dict[str, float],
    reasons: list[str],
    latest: float | None,
) -> float | None:
    """:func:`parse_submissions` for one record off the common path; returns the latest
    ``graded_at`` so far."""
    try:
        sub = parse_submission(record)
    except Malformed as exc:
        reasons.append(str(exc))
        return latest
    uid, aid = sub.user_id, sub.assignment_id
    if sub.score is None or sub.excused:
        _clear(into, cleared, uid, aid)
    else:
        into.setdefault(aid, {})[uid] = sub.score
        cleared.discard((uid, aid))
    at = sub.graded_at
    if at is None:
        return latest
    if type(record) is dict and type(record.get("graded_at")) is str:
        times[record["graded_at"]] = at
    return at if latest is None or at > latest else latest


def parse_module(record: object) -> tuple[int, int, str | None, bool]:
    """A module read with ``student_id`` as (module id, position, state, has completion
    requirements).

    ``items`` is omitted by Canvas for modules with more than 100 items; such a module is
    counted as required (its ``state`` still tells completion), rather than silently
    treated as having none. ``position`` (1-based, contiguous) lets the caller notice a
    list that lost a row to a drifting page.
    """
    rec = _mapping(record)
    module_id = _int(rec, "id")
    position = _int(rec, "position")
    state = rec.get("state")
    if state is not None and not isinstance(state, str):
        raise Malformed(f"module {module_id}: 'state' must be a string, got {shown(state)}")
    items = rec.get("items")
    if items is None:
        required = True
    elif isinstance(items, list):
        required = any(
            isinstance(item, Mapping) and isinstance(item.get("completion_requirement"), Mapping)
            for item in items
        )
    else:
        raise Malformed(f"module {module_id}: 'items' must be a list, got {shown(items)}")
    return module_id, position, state, required
