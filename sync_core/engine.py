"""The sync engine: events in, commands out. Every transition rule lives in this module.

A course's life is a loop of *rounds*. A round reads everything it needs from both sides
(READING), computes desired state and writes the difference (WRITING), then publishes the
leaderboard derived from the awards (PUBLISHING), and goes back to IDLE until its next due
time. Any failure that leaves the picture incomplete aborts the round and backs the course
off; nothing partial is acted on, and the next round starts from a fresh read. Awards pass
through the outbox in :mod:`sync_core.state`, so an award whose outcome is unknown is never
issued again before a read shows it is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum

from sync_core import canvas, credentials
from sync_core.canvas import CourseSnapshot, Malformed, Student
from sync_core.commands import (
    CanvasList,
    Command,
    CredentialsList,
    FetchCanvasPage,
    FetchCredentialsPage,
    IssueAssertion,
    LeaderboardEntry,
    Params,
    PublishLeaderboard,
    RemoveMember,
    UpsertMember,
)
from sync_core.credentials import Assertion, Member
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
from sync_core.reconcile import awarded_in, earned, leaderboard, owners_by_email, plan_members
from sync_core.rules import needs_modules, needs_quizzes
from sync_core.schedule import Policy, backoff_delay
from sync_core.state import (
    AwardStatus,
    CourseState,
    OutboxEntry,
    Quarantined,
    award_key,
    dump,
    load,
)

PER_PAGE = (("per_page", "100"),)
Fetch = FetchCanvasPage | FetchCredentialsPage
MAX_QUARANTINE = 100  # per course and round; enough to diagnose, bounded in size


class Phase(Enum):
    IDLE = "idle"
    READING = "reading"
    WRITING = "writing"
    PUBLISHING = "publishing"


@dataclass(frozen=True)
class CourseStatus:
    """What an operator needs to see: a course is never silently stuck."""

    course_id: int
    phase: Phase
    next_due: float
    failures: int
    last_error: str | None
    last_success_at: float | None
    last_full_at: float | None
    pending_awards: int
    uncertain_awards: int
    blocked_awards: int
    quarantined: tuple[Quarantined, ...]


@dataclass
class _Pending:
    kind: str  # "read" | "award" | "member" | "leaderboard"
    key: str
    command: Command
    attempt: int = 1


@dataclass
class _Round:
    full: bool
    started_at: float
    phase: Phase = Phase.READING
    pending: dict[int, _Pending] = field(default_factory=dict)
    snapshot: CourseSnapshot = field(default_factory=CourseSnapshot)
    emails: dict[int, str | None] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    assertions: list[Assertion] = field(default_factory=list)
    leaderboard: list[LeaderboardEntry] = field(default_factory=list)  # as read, in order
    cursors: set[str] = field(default_factory=set)
    max_graded_at: float | None = None
    quarantine: list[Quarantined] = field(default_factory=list)
    live_awards: set[tuple[int, str]] = field(default_factory=set)
    final_members: set[int] = field(default_factory=set)
    doubtful: bool = False  # an award's outcome is unknown: come back soon to settle it
    # An enrollment row was quarantined: the student it named may still be enrolled, so no
    # member is removed this round (removing on data we could not read loses a membership).
    roster_unsure: bool = False
    module_positions: dict[int, set[int]] = field(default_factory=dict)

    def note(self, resource: str, reason: str) -> None:
        if len(self.quarantine) < MAX_QUARANTINE:
            self.quarantine.append(Quarantined(resource, reason))


class RoundAborted(Exception):
    """Internal: the round cannot complete; carries the failure that ends it."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SyncEngine:
    """Level-triggered reconciler for every linked course. Pure: no I/O, clock or randomness.

    Feed it events with :meth:`handle` and execute the commands it returns; answer each
    command with exactly one response event. Persist :meth:`to_json` after every call
    (before executing the returned commands) to survive crashes.
    """

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.now = 0.0
        self._courses: dict[int, CourseState] = {}
        self._rounds: dict[int, _Round] = {}
        self._owner: dict[int, int] = {}  # request id -> course id
        self._next_request_id = 1
        self._clock_started = False

    # -- public API -------------------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        out: list[Command] = []
        if isinstance(event, Tick):
            self.now = max(self.now, event.now) if self._clock_started else event.now
            self._clock_started = True
            for cid, rnd in sorted(self._rounds.items()):
                if self.now - rnd.started_at >= self.policy.round_timeout:
                    self._abort(self._courses[cid], "round timed out: a response never came")
        elif isinstance(event, CourseLinked):
            self._link(event)
        elif isinstance(event, UpdateNowRequested):
            course = self._course(event.course_id)
            course.force_full = True
            course.next_due = min(course.next_due, self.now)
        else:
            self._answer(event, out)
        self._start_due(out)
        return out

    def _answer(
        self, event: PageReceived | WriteAcknowledged | RequestFailed, out: list[Command]
    ) -> None:
        cid = self._owner.pop(event.request_id, None)
        rnd = None if cid is None else self._rounds.get(cid)
        pending = None if rnd is None else rnd.pending.pop(event.request_id, None)
        if cid is None or rnd is None or pending is None:
            return  # an answer for an aborted round: the next round re-reads instead
        course = self._courses[cid]
        try:
            self._respond(course, rnd, pending, event, out)
        except RoundAborted as abort:
            self._abort(course, str(abort), abort.retry_after)

    def status(self) -> tuple[CourseStatus, ...]:
        result = []
        for cid, c in sorted(self._courses.items()):
            rnd = self._rounds.get(cid)
            counts = {s: 0 for s in AwardStatus}
            for entry in c.outbox.values():
                counts[entry.status] += 1
            result.append(
                CourseStatus(
                    course_id=cid,
                    phase=rnd.phase if rnd else Phase.IDLE,
                    next_due=c.next_due,
                    failures=c.failures,
                    last_error=c.last_error,
                    last_success_at=c.last_success_at,
                    last_full_at=c.last_full_at,
                    pending_awards=counts[AwardStatus.PENDING] + counts[AwardStatus.IN_FLIGHT],
                    uncertain_awards=counts[AwardStatus.UNCERTAIN],
                    blocked_awards=counts[AwardStatus.BLOCKED],
                    quarantined=tuple(c.quarantine),
                )
            )
        return tuple(result)

    def to_json(self) -> str:
        return dump(self._courses, self._next_request_id, self.now)

    @classmethod
    def from_json(cls, text: str, policy: Policy | None = None) -> SyncEngine:
        """Restore after a crash. Rounds that were in flight are gone; their courses are
        due at once, and their in-flight awards come back as uncertain."""
        engine = cls(policy)
        engine._courses, engine._next_request_id, engine.now = load(text)
        return engine

    # -- linking and scheduling --------------------------------------------------------

    def _course(self, course_id: int) -> CourseState:
        try:
            return self._courses[course_id]
        except KeyError:
            raise ValueError(f"course {course_id} is not linked") from None

    def _link(self, event: CourseLinked) -> None:
        existing = self._courses.get(event.course_id)
        if existing is None:
            self._courses[event.course_id] = CourseState(
                event.course_id, event.issuer_id, event.group_id, event.rules, next_due=self.now
            )
        else:  # relinked with new rules or group: keep what was awarded, resync in full
            existing.issuer_id, existing.group_id = event.issuer_id, event.group_id
            existing.rules, existing.force_full = event.rules, True
            existing.next_due = min(existing.next_due, self.now)

    def _start_due(self, out: list[Command]) -> None:
        if not self._clock_started:
            return  # no Tick yet: "now" is unknown, so nothing can be due
        for cid, course in sorted(self._courses.items()):
            if cid not in self._rounds and course.next_due <= self.now:
                self._start_round(course, out)

    def _finish(self, course: CourseState, rnd: _Round) -> None:
        del self._rounds[course.course_id]
        course.failures, course.last_error = 0, None
        course.last_success_at = self.now
        course.quarantine = rnd.quarantine
        if rnd.full:
            course.last_full_at = self.now
        if rnd.max_graded_at is not None:
            course.watermark = max(course.watermark or rnd.max_graded_at, rnd.max_graded_at)
        if course.force_full:
            course.next_due = self.now
        elif rnd.doubtful:
            course.next_due = self.now + self.policy.backoff_base
        else:
            course.next_due = self.now + self.policy.poll_interval

    def _abort(self, course: CourseState, reason: str, retry_after: float | None = None) -> None:
        rnd = self._rounds.pop(course.course_id)
        for request_id, pending in rnd.pending.items():
            self._owner.pop(request_id, None)
            entry = course.outbox.get(pending.key) if pending.kind == "award" else None
            if entry is not None:
                entry.status = AwardStatus.UNCERTAIN
        course.failures += 1
        course.last_error = reason
        course.quarantine = rnd.quarantine
        delay = backoff_delay(self.policy, course.course_id, course.failures)
        course.next_due = self.now + max(delay, retry_after or 0.0)

    # -- reading -----------------------------------------------------------------------

    def _take_id(self) -> int:
        request_id = self._next_request_id
        self._next_request_id += 1
        return request_id

    def _track(
        self,
        course: CourseState,
        rnd: _Round,
        kind: str,
        key: str,
        command: Command,
        out: list[Command],
        attempt: int = 1,
    ) -> None:
        rnd.pending[command.request_id] = _Pending(kind, key, command, attempt)
        self._owner[command.request_id] = course.course_id
        out.append(command)

    def _start_round(self, course: CourseState, out: list[Command]) -> None:
        full = (
            course.force_full
            or course.last_full_at is None
            or course.watermark is None
            or self.now - course.last_full_at >= self.policy.full_resync_interval
        )
        course.force_full = False
        rnd = _Round(full=full, started_at=self.now)
        self._rounds[course.course_id] = rnd
        if not full:
            rnd.snapshot.submissions = dict(course.submissions)
        submissions: Params = (("student_ids[]", "all"), *PER_PAGE)
        if not full and course.watermark is not None:
            since = iso(course.watermark - self.policy.watermark_overlap)
            submissions = (*submissions, ("graded_since", since))
        # Ask for completed enrollments explicitly: Canvas hides them by default, and a
        # student who finished the course still earns (behaviour 3 of the fact sheet).
        enrollments = (
            ("type[]", "StudentEnrollment"),
            ("state[]", "active"),
            ("state[]", "completed"),
            *PER_PAGE,
        )
        users = (
            ("enrollment_type[]", "student"),
            ("enrollment_state[]", "active"),
            ("enrollment_state[]", "completed"),
            *PER_PAGE,
        )
        reads: list[tuple[CanvasList, Params]] = [
            (CanvasList.ENROLLMENTS, enrollments),
            (CanvasList.USERS, users),
            (CanvasList.ASSIGNMENTS, PER_PAGE),
            (CanvasList.SUBMISSIONS, submissions),
        ]
        if needs_quizzes(course.rules):
            reads.append((CanvasList.QUIZZES, PER_PAGE))
        for resource, params in reads:
            self._read_canvas(course, rnd, resource.value, resource, params, None, out)
        self._read_credentials(course, rnd, CredentialsList.MEMBERS, None, (), None, out)
        self._read_credentials(course, rnd, CredentialsList.LEADERBOARD, None, (), None, out)
        for badge in course.badge_classes:
            flags = (("include_revoked", "true"), ("include_expired", "true"))
            self._read_credentials(course, rnd, CredentialsList.ASSERTIONS, badge, flags, None, out)

    def _read_canvas(
        self,
        course: CourseState,
        rnd: _Round,
        key: str,
        resource: CanvasList,
        params: Params,
        cursor: str | None,
        out: list[Command],
    ) -> None:
        command = FetchCanvasPage(self._take_id(), course.course_id, resource, params, cursor)
        self._track(course, rnd, "read", key, command, out)

    def _read_credentials(
        self,
        course: CourseState,
        rnd: _Round,
        resource: CredentialsList,
        badge: str | None,
        params: Params,
        cursor: str | None,
        out: list[Command],
    ) -> None:
        key = resource.value if badge is None else f"{resource.value}:{badge}"
        command = FetchCredentialsPage(
            self._take_id(),
            course.course_id,
            resource,
            course.issuer_id,
            course.group_id,
            badge,
            params,
            cursor,
        )
        self._track(course, rnd, "read", key, command, out)

    def _respond(
        self, course: CourseState, rnd: _Round, pending: _Pending, event: Event, out: list[Command]
    ) -> None:
        if isinstance(event, RequestFailed):
            self._failed(course, rnd, pending, event, out)
        elif isinstance(event, PageReceived) and pending.kind == "read":
            self._page(course, rnd, pending, event, out)
        elif isinstance(event, WriteAcknowledged) and pending.kind != "read":
            self._acknowledged(course, rnd, pending, event)
        else:
            raise RoundAborted(f"{type(event).__name__} does not answer a {pending.kind} request")
        if not rnd.pending:
            self._advance(course, rnd, out)

    def _page(
        self,
        course: CourseState,
        rnd: _Round,
        pending: _Pending,
        event: PageReceived,
        out: list[Command],
    ) -> None:
        command = pending.command
        assert isinstance(command, Fetch)
        parse = _PARSERS[command.resource]
        for record in event.records:
            try:
                parse(rnd, command, record)
            except Malformed as exc:
                rnd.note(pending.key, str(exc))
                if command.resource is CanvasList.ENROLLMENTS:
                    rnd.roster_unsure = True
        cursor = event.next_cursor
        if cursor is not None:
            if cursor in rnd.cursors:
                raise RoundAborted(f"{pending.key}: pagination loops back to a page already read")
            rnd.cursors.add(cursor)
            if isinstance(command, FetchCanvasPage):
                self._read_canvas(
                    course, rnd, pending.key, command.resource, command.params, cursor, out
                )
            else:
                self._read_credentials(
                    course, rnd, command.resource, command.badge_class, command.params, cursor, out
                )
        elif command.resource is CanvasList.MODULES:
            self._check_modules_complete(rnd, int(dict(command.params)["student_id"]))
        elif command.resource is CanvasList.ENROLLMENTS and needs_modules(course.rules):
            for uid in sorted(rnd.snapshot.students):
                params = (("student_id", str(uid)), ("include[]", "items"), *PER_PAGE)
                self._read_canvas(
                    course, rnd, f"modules:{uid}", CanvasList.MODULES, params, None, out
                )

    def _check_modules_complete(self, rnd: _Round, uid: int) -> None:
        """Course completion means *every* required module is complete, so a module list
        that lost a row (a numbered page drifted) could award a badge nobody earned. Module
        positions run 1..N: a gap means a row is missing, and that student's completion
        is not judged this round."""
        positions = rnd.module_positions.get(uid, set())
        if positions != set(range(1, len(positions) + 1)):
            rnd.snapshot.required_modules.pop(uid, None)
            rnd.snapshot.modules.pop(uid, None)
            rnd.note(
                f"modules:{uid}",
                "module positions have gaps (a page drifted); completion not judged this round",
            )

    # -- writing -----------------------------------------------------------------------

    def _advance(self, course: CourseState, rnd: _Round, out: list[Command]) -> None:
        if rnd.phase is Phase.READING:
            rnd.phase = Phase.WRITING
            self._write(course, rnd, out)
        elif rnd.phase is Phase.WRITING:
            rnd.phase = Phase.PUBLISHING
            self._publish(course, rnd, out)
        else:
            self._finish(course, rnd)
            return
        if not rnd.pending:
            self._advance(course, rnd, out)

    def _write(self, course: CourseState, rnd: _Round, out: list[Command]) -> None:
        snap = rnd.snapshot
        for uid, student in list(snap.students.items()):
            email = rnd.emails.get(uid)
            snap.students[uid] = Student(
                uid, student.name, email, student.current_score, student.active
            )
            if email is not None and email not in course.known_emails.setdefault(uid, []):
                course.known_emails[uid].append(email)
            if uid not in rnd.emails:
                rnd.note("users", f"user {uid}: enrolled but absent from the users list")
            elif email is None:
                rnd.note("users", f"user {uid}: no primary email visible; awards held")
        course.submissions = {k: s for k, s in snap.submissions.items() if s.score is not None}

        owners = owners_by_email(course.known_emails)
        found = awarded_in(rnd.assertions, owners, course.badge_classes)
        rnd.live_awards = {
            (owners[a.email], a.badge_class)
            for a in rnd.assertions
            if not a.revoked and a.email in owners
        }
        for (uid, badge), entity_id in found.items():
            key = award_key(uid, badge)
            course.awarded[key] = entity_id
            course.outbox.pop(key, None)

        earned_now = earned(course.rules, snap)
        for uid, badges in earned_now.items():
            for badge in badges:
                key = award_key(uid, badge)
                entry = course.outbox.get(key)
                if key in course.awarded:
                    continue
                if entry is None:
                    course.outbox[key] = OutboxEntry(uid, badge, AwardStatus.PENDING)
                elif entry.status is AwardStatus.UNCERTAIN or (
                    entry.status is AwardStatus.BLOCKED and rnd.full
                ):
                    # This round's assertions were read after the doubt arose and do not
                    # show the award: it did not commit.
                    entry.status, entry.reason = AwardStatus.PENDING, ""
        for key, entry in list(course.outbox.items()):
            still_earned = entry.badge_class in earned_now.get(entry.user_id, frozenset())
            if not still_earned and entry.status is not AwardStatus.BLOCKED:
                del course.outbox[key]

        plan = plan_members(snap, earned_now, rnd.members)
        rnd.final_members = set(rnd.members)
        cid, issuer, group = course.course_id, course.issuer_id, course.group_id
        for m in plan.upserts:
            upsert = UpsertMember(
                self._take_id(), cid, issuer, group, m.user_id, m.email, m.name, m.earned
            )
            self._track(course, rnd, "member", str(m.user_id), upsert, out)
        for uid in () if rnd.roster_unsure else plan.removals:
            removal = RemoveMember(self._take_id(), cid, issuer, group, uid)
            self._track(course, rnd, "member", f"-{uid}", removal, out)
        for key, entry in sorted(course.outbox.items()):
            email = snap.students[entry.user_id].email if entry.user_id in snap.students else None
            if entry.status is AwardStatus.PENDING and email is not None:
                entry.status = AwardStatus.IN_FLIGHT
                award = IssueAssertion(
                    self._take_id(), cid, entry.badge_class, entry.user_id, email
                )
                self._track(course, rnd, "award", key, award, out)

    def _publish(self, course: CourseState, rnd: _Round, out: list[Command]) -> None:
        entries = leaderboard(rnd.final_members, rnd.live_awards)
        if list(entries) != rnd.leaderboard:
            command = PublishLeaderboard(
                self._take_id(), course.course_id, course.issuer_id, course.group_id, entries
            )
            self._track(course, rnd, "leaderboard", "leaderboard", command, out)

    def _acknowledged(
        self, course: CourseState, rnd: _Round, pending: _Pending, event: WriteAcknowledged
    ) -> None:
        command = pending.command
        if isinstance(command, IssueAssertion):
            try:
                entity_id = credentials.parse_assertion(event.record).entity_id
            except Malformed:
                entity_id = ""  # committed all the same; the next read will name it
            course.awarded[pending.key] = entity_id
            course.outbox.pop(pending.key, None)
            rnd.live_awards.add((command.user_id, command.badge_class))
        elif isinstance(command, UpsertMember):
            rnd.final_members.add(command.user_id)
        elif isinstance(command, RemoveMember):
            rnd.final_members.discard(command.user_id)

    def _failed(
        self,
        course: CourseState,
        rnd: _Round,
        pending: _Pending,
        event: RequestFailed,
        out: list[Command],
    ) -> None:
        """One failed request. Idempotent requests are retried at once, a bounded number of
        times; an award is never retried blindly; throttling backs the whole course off."""
        failure = event.failure
        reason = f"{pending.key}: {failure.value}" + (f" ({event.detail})" if event.detail else "")
        command = pending.command
        retry = pending.attempt < self.policy.request_attempts
        if failure is Failure.THROTTLED:
            if pending.kind == "award":
                course.outbox[pending.key].status = AwardStatus.PENDING  # never reached it
            raise RoundAborted(reason, event.retry_after)
        if pending.kind == "award":
            entry = course.outbox[pending.key]
            if failure in (Failure.REJECTED, Failure.NOT_FOUND):
                entry.status, entry.reason = AwardStatus.BLOCKED, reason
                rnd.note("award", reason)
            elif failure is Failure.AUTH and retry:
                self._retry(course, rnd, pending, out)  # refused at the door: not issued
            elif failure is Failure.AUTH:
                entry.status = AwardStatus.PENDING
                raise RoundAborted(reason)
            else:
                # It may have committed. Finish the round without it, and come back soon
                # to read the assertions before deciding anything.
                entry.status = AwardStatus.UNCERTAIN
                rnd.doubtful = True
            return
        if failure is Failure.REJECTED and pending.kind != "read":
            rnd.note(pending.kind, reason)
        elif failure is Failure.NOT_FOUND and isinstance(command, RemoveMember):
            rnd.final_members.discard(command.user_id)  # already gone: the goal is met
        elif failure is not Failure.NOT_FOUND and retry:
            self._retry(course, rnd, pending, out)
        else:
            raise RoundAborted(reason)

    def _retry(
        self, course: CourseState, rnd: _Round, pending: _Pending, out: list[Command]
    ) -> None:
        again = replace(pending.command, request_id=self._take_id())
        self._track(course, rnd, pending.kind, pending.key, again, out, pending.attempt + 1)


# -- record parsers, by list --------------------------------------------------------------


def _enrollment(rnd: _Round, command: Fetch, record: object) -> None:
    row = canvas.parse_enrollment(record)
    if row.student:
        known = rnd.snapshot.students.get(row.user_id)
        score, active = row.current_score, row.active
        if known is not None:
            active = active or known.active
            if known.current_score is not None:
                score = known.current_score  # each row of one user has the same course grade
        rnd.snapshot.students[row.user_id] = Student(row.user_id, row.name, None, score, active)


def _user(rnd: _Round, command: Fetch, record: object) -> None:
    uid, email = canvas.parse_user_email(record)
    rnd.emails[uid] = email


def _assignment(rnd: _Round, command: Fetch, record: object) -> None:
    a = canvas.parse_assignment(record)
    rnd.snapshot.assignments[a.assignment_id] = a


def _quiz(rnd: _Round, command: Fetch, record: object) -> None:
    quiz_id, assignment_id = canvas.parse_quiz(record)
    if assignment_id is not None:
        rnd.snapshot.quizzes[quiz_id] = assignment_id


def _submission(rnd: _Round, command: Fetch, record: object) -> None:
    s = canvas.parse_submission(record)
    rnd.snapshot.submissions[(s.user_id, s.assignment_id)] = s
    if s.graded_at is not None:
        rnd.max_graded_at = max(rnd.max_graded_at or s.graded_at, s.graded_at)


def _module(rnd: _Round, command: Fetch, record: object) -> None:
    # Module progress is read per student: the student is named by the request, not the record.
    uid = int(dict(command.params)["student_id"])
    module_id, position, state, required = canvas.parse_module(record)
    rnd.module_positions.setdefault(uid, set()).add(position)
    if state is not None:
        rnd.snapshot.modules.setdefault(uid, {})[module_id] = state
    if required:
        known = rnd.snapshot.required_modules.get(uid, frozenset())
        rnd.snapshot.required_modules[uid] = known | {module_id}


def _member(rnd: _Round, command: Fetch, record: object) -> None:
    m = credentials.parse_member(record)
    rnd.members[m.user_id] = m


def _assertion(rnd: _Round, command: Fetch, record: object) -> None:
    rnd.assertions.append(credentials.parse_assertion(record))


def _leaderboard(rnd: _Round, command: Fetch, record: object) -> None:
    rnd.leaderboard.append(credentials.parse_leaderboard_entry(record))


_PARSERS: dict[CanvasList | CredentialsList, Callable[[_Round, Fetch, object], None]] = {
    CanvasList.ENROLLMENTS: _enrollment,
    CanvasList.USERS: _user,
    CanvasList.ASSIGNMENTS: _assignment,
    CanvasList.QUIZZES: _quiz,
    CanvasList.SUBMISSIONS: _submission,
    CanvasList.MODULES: _module,
    CredentialsList.MEMBERS: _member,
    CredentialsList.ASSERTIONS: _assertion,
    CredentialsList.LEADERBOARD: _leaderboard,
}
