"""A model of the original Canvas ↔ Credentials sync, flaws and all.

This engine exists to be wrong in the ways the vendor's known issue describes, so that the
scenarios and the property tests can show each symptom appearing and the core holding. It
speaks the same events and commands as :class:`sync_core.SyncEngine` and runs in the same
harness; it lives outside ``sync_core``, which stays correct and pure.

The design follows what the Credentials documentation and the known-issue page suggest
(fact sheets: credentials-api.md section 5, canvas-api.md section 9). Each choice below is
one a reasonable team could have made, and each causes a known symptom:

- **Edge-triggered checks.** Nothing is reconciled; a *check* runs only when triggered (a
  periodic job, or "update now") and acts only on what changed since the last one.
- **The course loop is driven by the assignment list** (symptom 1). A check starts by
  listing the course's assignments and has nothing to do when the list is empty, so a
  course with only modules never syncs at all.
- **Courses are disabled after repeated errors** (symptom 2). Three checks in a row that
  fail (an outage, a throttle, one malformed record) disable the course for good; "update
  now" runs one check but does not turn the schedule back on.
- **A wall-clock ``graded_since`` watermark** (symptom 3). Each check moves the watermark to
  the time it started, before reading anything, so a check that fails, or a crash, loses
  every grade given in that window; Canvas's strict ``>`` and stale replicas lose more.
- **"Earned" is recorded before the award, and award errors are logged and dropped**
  (symptom 3). The group's progress view shows the badge as earned at once; if the
  assertion POST fails it is never tried again, because the badge is already "earned".
  An ambiguous failure (a timeout, a lost response) is retried once, blindly: when the first
  POST had committed, the student now holds the badge twice.
- **Membership is taken at link time from the first page of enrollments** (symptom 4). The
  group gets the first 35 students listed, once; students enrolled later (an SIS import),
  students who change email and students who drop are never reflected. Checks look at the
  first page of the progress list only, and the default enrollment listing hides students
  whose enrollment is completed, so they earn nothing.
- **An incremental leaderboard** (symptom 5). Each acknowledged award adds one to a counter
  and the whole board is published; a publish that fails, or an award whose response was
  lost, leaves the board wrong until "update now" recounts it.

State that the original kept in its database (roster, watermark, earned marks, counters,
failure counts) is persisted by :meth:`to_json`; checks in flight are not, so a worker
crash loses them, as it did.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sync_core import canvas
from sync_core.canvas import CourseSnapshot, Malformed, Student
from sync_core.commands import (
    CanvasList,
    Command,
    FetchCanvasPage,
    IssueAssertion,
    LeaderboardEntry,
    Params,
    PublishLeaderboard,
    UpsertMember,
)
from sync_core.engine import CourseStatus, Phase
from sync_core.events import (
    CourseLinked,
    Event,
    Failure,
    PageReceived,
    RequestFailed,
    Tick,
    UpdateNowRequested,
    WriteAcknowledged,
)
from sync_core.reconcile import earned
from sync_core.rules import AwardRule, needs_modules, needs_quizzes, rule_from_dict, rule_to_dict
from sync_core.schedule import Policy

PROGRESS_PAGE = 35  # students per page of the group progress list
GIVE_UP_AFTER = 3  # failed checks in a row before a course is disabled
FORMAT = "credsync-legacy/1"


@dataclass
class _Course:
    """What the original kept in its database, per linked course."""

    course_id: int
    issuer_id: str
    group_id: str
    rules: tuple[AwardRule, ...]
    next_due: float
    roster: dict[int, str] | None = None  # taken once, at the first successful check
    watermark: float | None = None  # wall clock of the last check's start
    earned: set[str] = field(default_factory=set)  # "user:badge" shown as Earned
    board: dict[int, int] = field(default_factory=dict)  # incremental leaderboard
    failures: int = 0
    disabled: bool = False
    last_success_at: float | None = None
    last_error: str | None = None


@dataclass
class _Check:
    """One check in flight: a queue of reads done one at a time. Never persisted."""

    full: bool
    reads: list[tuple[CanvasList, Params]]
    waiting: FetchCanvasPage | None = None
    snapshot: CourseSnapshot = field(default_factory=CourseSnapshot)
    emails: dict[int, str | None] = field(default_factory=dict)
    any_assignments: bool = False


class LegacyEngine:
    """The original design, behind the same interface as :class:`sync_core.SyncEngine`."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.now = 0.0
        self._next_id = 1
        self._courses: dict[int, _Course] = {}
        self._checks: dict[int, _Check] = {}
        self._writes: dict[int, tuple[Command, int]] = {}  # request id -> (command, attempt)

    # -- the engine interface ------------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        out: list[Command] = []
        if isinstance(event, Tick):
            self.now = event.now
            for cid, course in sorted(self._courses.items()):
                if cid not in self._checks and not course.disabled and course.next_due <= self.now:
                    self._start(course, full=False, out=out)
        elif isinstance(event, CourseLinked):
            self._courses.setdefault(
                event.course_id,
                _Course(event.course_id, event.issuer_id, event.group_id, event.rules, self.now),
            )
        elif isinstance(event, UpdateNowRequested):
            if event.course_id in self._courses and event.course_id not in self._checks:
                self._start(self._courses[event.course_id], full=True, out=out)
        elif getattr(event, "request_id", None) in self._writes:
            self._answered_write(event, out)
        else:
            self._answered_read(event, out)
        return out

    def status(self) -> tuple[CourseStatus, ...]:
        return tuple(
            CourseStatus(
                course_id=c.course_id,
                phase=Phase.READING if c.course_id in self._checks else Phase.IDLE,
                next_due=math.inf if c.disabled else c.next_due,
                failures=c.failures,
                last_error=c.last_error,
                last_success_at=c.last_success_at,
                last_full_at=None,
                pending_awards=0,
                uncertain_awards=0,
                blocked_awards=0,
                quarantined=(),
            )
            for _, c in sorted(self._courses.items())
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "now": self.now,
                "next_id": self._next_id,
                "courses": [
                    {
                        "course_id": c.course_id,
                        "issuer_id": c.issuer_id,
                        "group_id": c.group_id,
                        "rules": [rule_to_dict(r) for r in c.rules],
                        "next_due": c.next_due,
                        "roster": None if c.roster is None else sorted(c.roster.items()),
                        "watermark": c.watermark,
                        "earned": sorted(c.earned),
                        "board": sorted(c.board.items()),
                        "failures": c.failures,
                        "disabled": c.disabled,
                        "last_success_at": c.last_success_at,
                        "last_error": c.last_error,
                    }
                    for _, c in sorted(self._courses.items())
                ],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, policy: Policy | None = None) -> LegacyEngine:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"not a legacy engine state (format {data.get('format')!r})")
        engine = cls(policy)
        engine.now, engine._next_id = data["now"], data["next_id"]
        for c in data["courses"]:
            roster = c["roster"]
            engine._courses[c["course_id"]] = _Course(
                course_id=c["course_id"],
                issuer_id=c["issuer_id"],
                group_id=c["group_id"],
                rules=tuple(rule_from_dict(r) for r in c["rules"]),
                next_due=c["next_due"],
                roster=None if roster is None else {int(u): e for u, e in roster},
                watermark=c["watermark"],
                earned=set(c["earned"]),
                board={int(u): n for u, n in c["board"]},
                failures=c["failures"],
                disabled=c["disabled"],
                last_success_at=c["last_success_at"],
                last_error=c["last_error"],
            )
        return engine

    # -- checks --------------------------------------------------------------------------

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _start(self, course: _Course, full: bool, out: list[Command]) -> None:
        """Every check begins with the assignment list: the course loop is driven by it."""
        check = _Check(full=full, reads=[(CanvasList.ASSIGNMENTS, (("per_page", "100"),))])
        self._checks[course.course_id] = check
        self._next_read(course, check, out)

    def _plan_reads(self, course: _Course, check: _Check) -> None:
        """The rest of a check, once assignments are known: the first page of the progress
        list, then grades since the watermark (moved now, before anything is read)."""
        page = (("per_page", str(PROGRESS_PAGE)),)
        submissions: Params = (("student_ids[]", "all"), ("per_page", "100"))
        if course.watermark is not None and not check.full:
            submissions = (*submissions, ("graded_since", _iso(course.watermark)))
        course.watermark = self.now
        check.reads = [
            (CanvasList.ENROLLMENTS, (("type[]", "StudentEnrollment"), *page)),
            (CanvasList.USERS, (("enrollment_type[]", "student"), *page)),
            (CanvasList.SUBMISSIONS, submissions),
        ]
        if needs_quizzes(course.rules):
            check.reads.append((CanvasList.QUIZZES, (("per_page", "100"),)))

    def _next_read(self, course: _Course, check: _Check, out: list[Command]) -> None:
        if not check.reads:
            self._complete(course, check, out)
            return
        resource, params = check.reads.pop(0)
        check.waiting = FetchCanvasPage(self._take_id(), course.course_id, resource, params)
        out.append(check.waiting)

    def _answered_read(self, event: Event, out: list[Command]) -> None:
        request_id = getattr(event, "request_id", None)
        waiting = [
            (cid, check)
            for cid, check in self._checks.items()
            if check.waiting is not None and check.waiting.request_id == request_id
        ]
        if not waiting:
            return  # an answer to a request from before a crash: nobody is waiting for it
        cid, check = waiting[0]
        course, command = self._courses[cid], check.waiting
        assert command is not None
        if isinstance(event, RequestFailed):
            self._fail(course, f"{command.resource.value}: {event.failure.value} {event.detail}")
            return
        assert isinstance(event, PageReceived)
        try:
            for record in event.records:
                _PARSE[command.resource](check, command, record)
        except Malformed as exc:  # the original had no quarantine: bad data fails the check
            self._fail(course, f"{command.resource.value}: {exc}")
            return
        if command.resource is CanvasList.ASSIGNMENTS and event.next_cursor is None:
            if not check.any_assignments:
                del self._checks[cid]  # nothing to check: the course is silently skipped
                course.next_due = self.now + self.policy.poll_interval
                return
            self._plan_reads(course, check)
        if command.resource is CanvasList.ENROLLMENTS and needs_modules(course.rules):
            for uid in sorted(check.snapshot.students):
                params = (("student_id", str(uid)), ("include[]", "items"), ("per_page", "100"))
                check.reads.append((CanvasList.MODULES, params))
        follows = command.resource in (CanvasList.ASSIGNMENTS, CanvasList.SUBMISSIONS)
        if event.next_cursor is not None and follows:
            check.waiting = replace(command, request_id=self._take_id(), cursor=event.next_cursor)
            out.append(check.waiting)
        else:
            self._next_read(course, check, out)

    def _fail(self, course: _Course, reason: str) -> None:
        del self._checks[course.course_id]
        course.failures += 1
        course.last_error = reason
        course.next_due = self.now + self.policy.poll_interval
        if course.failures >= GIVE_UP_AFTER:
            course.disabled = True
            course.last_error = f"disabled after {course.failures} failed checks: {reason}"

    def _complete(self, course: _Course, check: _Check, out: list[Command]) -> None:
        """Act on what this check saw: award what is newly earned, take the roster once."""
        del self._checks[course.course_id]
        course.failures, course.last_error = 0, None
        course.last_success_at = self.now
        course.next_due = self.now + self.policy.poll_interval
        earned_now = earned(course.rules, check.snapshot)
        students = check.snapshot.students
        if course.roster is None:
            course.roster = {
                uid: email
                for uid in sorted(students)
                if students[uid].active and (email := check.emails.get(uid))
            }
            for uid, email in course.roster.items():
                out.append(self._member(course, uid, email, students[uid], ()))
                course.board[uid] = 0
            out.append(self._board(course))
        if check.full:  # "update now" recounts the board from what it believes it awarded
            out.append(self._board(course))
        for uid, badges in sorted(earned_now.items()):
            email = check.emails.get(uid)
            new = [b for b in sorted(badges) if f"{uid}:{b}" not in course.earned]
            if email is None or not new:
                continue
            course.earned.update(f"{uid}:{b}" for b in new)
            if uid in course.roster:
                shown = tuple(
                    sorted(
                        {
                            r.badge_class
                            for r in course.rules
                            if f"{uid}:{r.badge_class}" in course.earned
                        }
                    )
                )
                out.append(self._member(course, uid, course.roster[uid], students[uid], shown))
            for badge in new:
                # Badgr's default: duplicates allowed (the original sync sent no flag).
                award = IssueAssertion(
                    self._take_id(), course.course_id, badge, uid, email, allow_duplicates=True
                )
                self._writes[award.request_id] = (award, 1)
                out.append(award)

    def _member(
        self, course: _Course, uid: int, email: str, student: Student, shown: tuple[str, ...]
    ) -> UpsertMember:
        command = UpsertMember(
            self._take_id(),
            course.course_id,
            course.issuer_id,
            course.group_id,
            uid,
            email,
            student.name,
            shown,
        )
        self._writes[command.request_id] = (command, 1)
        return command

    def _board(self, course: _Course) -> PublishLeaderboard:
        entries = sorted(course.board.items(), key=lambda e: (-e[1], e[0]))
        command = PublishLeaderboard(
            self._take_id(),
            course.course_id,
            course.issuer_id,
            course.group_id,
            tuple(LeaderboardEntry(uid, n) for uid, n in entries),
        )
        self._writes[command.request_id] = (command, 1)
        return command

    def _answered_write(self, event: Event, out: list[Command]) -> None:
        assert isinstance(event, WriteAcknowledged | RequestFailed)
        command, attempt = self._writes.pop(event.request_id)
        course = self._courses[command.course_id]
        if isinstance(event, WriteAcknowledged):
            if isinstance(command, IssueAssertion) and command.user_id in course.board:
                course.board[command.user_id] += 1
                out.append(self._board(course))
            return
        assert isinstance(event, RequestFailed)
        if (
            isinstance(command, IssueAssertion)
            and event.failure is Failure.AMBIGUOUS
            and attempt == 1
        ):
            again = replace(command, request_id=self._take_id())  # retried blindly
            self._writes[again.request_id] = (again, 2)
            out.append(again)
            return
        course.last_error = f"{type(command).__name__} failed ({event.failure.value}); dropped"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _enrollment(check: _Check, command: FetchCanvasPage, record: object) -> None:
    row = canvas.parse_enrollment(record)
    if row.student:
        check.snapshot.students[row.user_id] = Student(
            row.user_id, row.name, None, row.current_score, row.active
        )


def _user(check: _Check, command: FetchCanvasPage, record: object) -> None:
    uid, email = canvas.parse_user_email(record)
    check.emails[uid] = email


def _assignment(check: _Check, command: FetchCanvasPage, record: object) -> None:
    a = canvas.parse_assignment(record)
    check.snapshot.assignments[a.assignment_id] = a
    check.any_assignments = True


def _quiz(check: _Check, command: FetchCanvasPage, record: object) -> None:
    quiz_id, assignment_id = canvas.parse_quiz(record)
    if assignment_id is not None:
        check.snapshot.quizzes[quiz_id] = assignment_id


def _submission(check: _Check, command: FetchCanvasPage, record: object) -> None:
    s = canvas.parse_submission(record)
    check.snapshot.submissions[(s.user_id, s.assignment_id)] = s


def _module(check: _Check, command: FetchCanvasPage, record: object) -> None:
    uid = int(dict(command.params)["student_id"])
    module_id, _position, state, required = canvas.parse_module(record)
    if state is not None:
        check.snapshot.modules.setdefault(uid, {})[module_id] = state
    if required:
        known = check.snapshot.required_modules.get(uid, frozenset())
        check.snapshot.required_modules[uid] = known | {module_id}


_PARSE = {
    CanvasList.ENROLLMENTS: _enrollment,
    CanvasList.USERS: _user,
    CanvasList.ASSIGNMENTS: _assignment,
    CanvasList.QUIZZES: _quiz,
    CanvasList.SUBMISSIONS: _submission,
    CanvasList.MODULES: _module,
}
