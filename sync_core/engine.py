"""The sync engine: events in, commands out. Every transition rule lives in this module.

A course's life is a loop of *rounds*. A round reads what it needs from both sides
(READING), computes desired state and writes the difference (WRITING), then publishes the
leaderboard derived from the awards (PUBLISHING), and goes back to IDLE until its next due
time. Any failure that leaves the picture incomplete aborts the round and backs the course
off; nothing partial is acted on, and the next round starts from a fresh read. Awards pass
through the outbox in :mod:`sync_core.state`, so an award whose outcome is unknown is never
issued again before a read shows it is missing.

Rounds are *full* or *incremental*, in the manner of a Kubernetes informer (a cache plus a
periodic full resync):

- A full round (the first, every ``Policy.full_resync_interval``, "update now", a relink,
  a restored version 1 state) reads everything: the roster, users, assignments, every
  submission, module progress of every student, and from Credentials the group's members,
  its leaderboard and every badge class's assertions. It judges every student, and it is
  what repairs changes others made in Credentials (a member removed by hand, a leaderboard
  edited, an assertion awarded or deleted outside the sync).
- An incremental round reads from Canvas the roster, assignments and quizzes, the
  submissions graded since the watermark, the users list only when a student on the roster
  has no known email (an email change otherwise shows at the next full round), and module
  progress only of the students who can still earn a module or course-completion badge
  (latency of a module completion is thus one poll, as before; for a student holding every
  such badge, a change in progress shows at the next full round). It trusts the cached
  Credentials view in :class:`~sync_core.state.CourseState` (members, unrevoked awards, the
  last leaderboard) and judges again only the students whose enrollment, email, submissions
  or module progress changed (all of them when an assignment or quiz changed). It reads a
  badge class's assertions only when that class has an award to settle: an award whose
  outcome is unknown, or one pending or about to be issued. So an award is never issued
  without a read of its class's assertions in the same round, in either kind of round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from operator import attrgetter

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
from sync_core.reconcile import (
    awarded_in,
    earned,
    leaderboard,
    plan_members,
    rerank,
)
from sync_core.rules import AwardRule, meets, needs_modules, needs_quizzes, uses_modules
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
_EMAIL = attrgetter("email")
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
    doubtful: bool = False  # an award's outcome is unknown: come back soon to settle it
    # An enrollment row was quarantined: the student it named may still be enrolled, so no
    # member is removed this round (removing on data we could not read loses a membership).
    roster_unsure: bool = False
    module_positions: dict[int, set[int]] = field(default_factory=dict)
    modules_read: set[int] = field(default_factory=set)  # students whose progress was read
    times: dict[str, float] = field(default_factory=dict)  # graded_at text -> epoch seconds
    scores: dict[int, dict[int, float]] = field(default_factory=dict)  # as read
    cleared: set[tuple[int, int]] = field(default_factory=set)  # read ungraded or excused
    fresh: set[int] = field(default_factory=set)  # students the roster read built anew
    users_read: bool = False  # the users list was read (else emails are the cached ones)
    read_badges: set[str] = field(default_factory=set)  # badge classes whose assertions were read
    judged: bool = False  # Canvas read and students judged; next: settle awards, write
    students: dict[int, Student] = field(default_factory=dict)  # with emails, as judged
    earned_now: dict[int, frozenset[str]] = field(default_factory=dict)
    changed: set[int] = field(default_factory=set)  # students judged afresh this round
    new_awards: list[tuple[int, str]] = field(default_factory=list)  # earned, not awarded
    # The cached leaderboard when this round first changed a member or an award (it is then
    # unknown in the state until published, so a crash re-derives it), and whose rank moved.
    board_base: tuple[LeaderboardEntry, ...] | None = None
    rank_users: set[int] = field(default_factory=set)

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
        # What this round judged becomes the cache the next incremental round compares with.
        course.students, course.earned = rnd.students, rnd.earned_now
        course.assignments, course.quizzes = rnd.snapshot.assignments, rnd.snapshot.quizzes
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
        reads: list[tuple[CanvasList, Params]] = [
            (CanvasList.ENROLLMENTS, enrollments),
            (CanvasList.ASSIGNMENTS, PER_PAGE),
            (CanvasList.SUBMISSIONS, submissions),
        ]
        if needs_quizzes(course.rules):
            reads.append((CanvasList.QUIZZES, PER_PAGE))
        for resource, params in reads:
            self._read_canvas(course, rnd, resource.value, resource, params, None, out)
        if full:
            self._read_users(
                course, rnd, out
            )  # an incremental round trusts the cached view (see the module docstring)
            self._read_credentials(course, rnd, CredentialsList.MEMBERS, None, (), None, out)
            self._read_credentials(course, rnd, CredentialsList.LEADERBOARD, None, (), None, out)
            self._read_assertions(course, rnd, course.badge_classes, out)

    def _read_assertions(
        self, course: CourseState, rnd: _Round, badges: Iterable[str], out: list[Command]
    ) -> None:
        flags = (("include_revoked", "true"), ("include_expired", "true"))
        for badge in badges:
            rnd.read_badges.add(badge)
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
        # The lists every round reads in full are parsed a page at a time, in tight loops.
        if command.resource is CanvasList.SUBMISSIONS:
            latest, reasons = canvas.parse_submissions(
                event.records, rnd.scores, rnd.cleared, rnd.times
            )
            if latest is not None:
                rnd.max_graded_at = max(rnd.max_graded_at or latest, latest)
        elif command.resource is CanvasList.ENROLLMENTS:
            reasons = canvas.parse_enrollments(
                event.records, rnd.snapshot.students, course.students, rnd.fresh
            )
            # A student a bad row names may still be enrolled: no member is removed this
            # round (removing on data we could not read loses a membership).
            rnd.roster_unsure = rnd.roster_unsure or bool(reasons)
        elif command.resource is CanvasList.USERS:
            reasons = canvas.parse_user_emails(event.records, rnd.emails)
        elif command.resource is CredentialsList.ASSERTIONS:
            reasons = credentials.parse_assertions(event.records, rnd.assertions)
        else:
            reasons = []
            parse = _PARSERS[command.resource]
            for record in event.records:
                try:
                    parse(rnd, command, record)
                except Malformed as exc:
                    reasons.append(str(exc))
        for reason in reasons:
            rnd.note(pending.key, reason)
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
        elif command.resource is CanvasList.ENROLLMENTS:
            self._roster_read(course, rnd, out)

    def _roster_read(self, course: CourseState, rnd: _Round, out: list[Command]) -> None:
        """The roster is complete: read what depends on who is in it. An incremental round
        reads the users list only when a student on the roster has no known email (new, or
        hidden until now): an email change otherwise shows at the next full round. Module
        progress is read per student: every student in a full round, in an incremental one
        those who can still earn a badge from it."""
        students = rnd.snapshot.students
        if not rnd.full:
            cached = course.students
            if not students.keys() <= cached.keys() or None in map(_EMAIL, cached.values()):
                self._read_users(course, rnd, out)
        if not needs_modules(course.rules):
            return
        badges = [r.badge_class for r in course.rules if uses_modules(r)]
        for uid in sorted(students):
            if (
                not rnd.full
                and uid in course.earned  # judged before: its module badges are known
                and all(award_key(uid, b) in course.awarded for b in badges)
            ):
                continue  # holds every badge progress could give: the full round re-reads
            rnd.modules_read.add(uid)
            params = (("student_id", str(uid)), ("include[]", "items"), *PER_PAGE)
            self._read_canvas(course, rnd, f"modules:{uid}", CanvasList.MODULES, params, None, out)

    def _read_users(self, course: CourseState, rnd: _Round, out: list[Command]) -> None:
        rnd.users_read = True
        users = (
            ("enrollment_type[]", "student"),
            ("enrollment_state[]", "active"),
            ("enrollment_state[]", "completed"),
            *PER_PAGE,
        )
        self._read_canvas(course, rnd, CanvasList.USERS.value, CanvasList.USERS, users, None, out)

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
        if rnd.phase is Phase.READING and not rnd.judged:
            self._judge(course, rnd)
            rnd.judged = True
            # An award is issued only after its class's assertions were read in the same
            # round: a full round has read them all, an incremental one reads them now.
            unread = sorted(self._to_settle(course, rnd) - rnd.read_badges)
            self._read_assertions(course, rnd, unread, out)
        elif rnd.phase is Phase.READING:
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

    def _judge(self, course: CourseState, rnd: _Round) -> None:
        """Merge what Canvas showed into the course and decide what each student earns.

        A full round judges every student. An incremental one judges again only those whose
        enrollment, email, submissions or module progress it saw change (every student when
        an assignment or quiz changed, or when the cache is missing), and keeps the rest as
        the last completed round judged them."""
        snap, emails, full = rnd.snapshot, rnd.emails, rnd.full
        cached_students, cached_earned = course.students, course.earned
        course.earned = {}  # until _finish: a crash or abort from here on re-judges everyone
        changed: set[int] = set()
        if full:
            course.scores = rnd.scores
        else:  # merge what was graded since the watermark
            merged = course.scores
            for aid, read in rnd.scores.items():
                table = merged.setdefault(aid, {})
                for uid, score in read.items():
                    if table.get(uid) != score:
                        changed.add(uid)
                        table[uid] = score
            for uid, aid in rnd.cleared:
                if merged.get(aid, {}).pop(uid, None) is not None:
                    changed.add(uid)
        snap.scores = course.scores
        rejudge_all = (
            full or snap.assignments != course.assignments or snap.quizzes != course.quizzes
        )
        students, known, owners = snap.students, course.known_emails, course.owners
        # Without a users read, the roster parser built anew exactly the students whose
        # enrollment may have changed (every student on the roster is then a known one).
        for uid in students.keys() if rnd.users_read else rnd.fresh & students.keys():
            row, old_student = students[uid], cached_students.get(uid)
            if not rnd.users_read and old_student is not None:
                email = old_student.email  # known, or the users list would have been read
            else:
                email = emails.get(uid)
                if uid not in emails:
                    rnd.note("users", f"user {uid}: enrolled but absent from the users list")
                elif email is None:
                    rnd.note("users", f"user {uid}: no primary email visible; awards held")
            if (
                old_student is not None
                and email == old_student.email
                and (row is old_student or _same_enrollment(row, old_student))
            ):
                students[uid] = old_student
                continue
            students[uid] = Student(uid, row.name, email, row.current_score, row.active)
            changed.add(uid)
            if email is not None and email not in known.setdefault(uid, []):
                known[uid].append(email)
                owners[email] = max(owners.get(email, uid), uid)
        changed.update(students.keys() - cached_earned.keys())
        changed = set(students) if rejudge_all else (changed | rnd.modules_read) & students.keys()
        if full:
            earned_now = earned(course.rules, snap)
        else:
            earned_now = dict(cached_earned)
            for uid in earned_now.keys() - students.keys():
                del earned_now[uid]  # left the roster
            for uid in changed:
                fresh = uid in rnd.modules_read
                earned_now[uid] = _earned_by(course.rules, snap, uid, fresh, cached_earned.get(uid))
        rnd.students, rnd.earned_now, rnd.changed = students, earned_now, changed

    def _to_settle(self, course: CourseState, rnd: _Round) -> set[str]:
        """Badge classes with an award to settle: one in the outbox not refused for good
        (pending, or uncertain: its outcome must be read before anything is issued), or one
        a student judged this round newly earns (kept in ``rnd.new_awards``)."""
        badges = {
            e.badge_class for e in course.outbox.values() if e.status is not AwardStatus.BLOCKED
        }
        awarded = course.awarded
        earned_now = rnd.earned_now
        for uid in rnd.changed:
            for badge in earned_now[uid]:
                if award_key(uid, badge) not in awarded:
                    rnd.new_awards.append((uid, badge))
                    badges.add(badge)
        return badges

    def _write(self, course: CourseState, rnd: _Round, out: list[Command]) -> None:
        snap, students, earned_now = rnd.snapshot, rnd.students, rnd.earned_now
        if rnd.full:  # the fresh view replaces the cache; the ranking is derived at publishing
            course.members = dict(rnd.members)
            course.leaderboard = None
            course.live_awards = {}
        if rnd.read_badges:
            self._take_in_assertions(course, rnd)

        for uid, badge in rnd.new_awards:
            key = award_key(uid, badge)
            if key not in course.awarded and key not in course.outbox:
                course.outbox[key] = OutboxEntry(uid, badge, AwardStatus.PENDING)
        for key, entry in list(course.outbox.items()):
            if entry.badge_class not in earned_now.get(entry.user_id, frozenset()):
                if entry.status is not AwardStatus.BLOCKED:
                    del course.outbox[key]
            elif (
                entry.status is AwardStatus.UNCERTAIN and entry.badge_class in rnd.read_badges
            ) or (entry.status is AwardStatus.BLOCKED and rnd.full):
                # This round's assertions were read after the doubt arose and do not
                # show the award: it did not commit.
                entry.status, entry.reason = AwardStatus.PENDING, ""

        upserts: Sequence[Member]
        removals: Sequence[int]
        if rnd.full:
            plan = plan_members(snap, earned_now, course.members)
            upserts, removals = plan.upserts, plan.removals
        else:
            upserts, removals = self._member_changes(course, rnd)
        cid, issuer, group = course.course_id, course.issuer_id, course.group_id
        for m in upserts:
            upsert = UpsertMember(
                self._take_id(), cid, issuer, group, m.user_id, m.email, m.name, m.earned
            )
            self._track(course, rnd, "member", str(m.user_id), upsert, out)
        for uid in () if rnd.roster_unsure else removals:
            removal = RemoveMember(self._take_id(), cid, issuer, group, uid)
            self._track(course, rnd, "member", f"-{uid}", removal, out)
        for key, entry in sorted(course.outbox.items()):
            email = students[entry.user_id].email if entry.user_id in students else None
            if entry.status is AwardStatus.PENDING and email is not None:
                if entry.badge_class not in rnd.read_badges:
                    continue  # not read this round (it appeared after the check): next round
                entry.status = AwardStatus.IN_FLIGHT
                award = IssueAssertion(
                    self._take_id(), cid, entry.badge_class, entry.user_id, email
                )
                self._track(course, rnd, "award", key, award, out)

    def _take_in_assertions(self, course: CourseState, rnd: _Round) -> None:
        """What this round's assertion reads show: every (user, badge class) holding one is
        awarded, and the unrevoked ones replace the cached holders of the classes read."""
        found, live = awarded_in(rnd.assertions, course.owners, rnd.read_badges)
        awarded, outbox = course.awarded, course.outbox
        for (uid, badge), entity_id in found.items():
            key = award_key(uid, badge)
            awarded[key] = entity_id
            outbox.pop(key, None)
        for badge, holders in live.items():
            if not rnd.full:  # a full round ranks everyone afresh
                for uid in course.live_awards.get(badge, set()) ^ holders:
                    self._rank_moves(course, rnd, uid)
            if holders:
                course.live_awards[badge] = holders
            else:
                course.live_awards.pop(badge, None)

    def _member_changes(self, course: CourseState, rnd: _Round) -> tuple[list[Member], list[int]]:
        """:func:`~sync_core.reconcile.plan_members` for an incremental round: the students
        judged this round against the cached members, and cached members no longer active."""
        upserts = []
        students = rnd.students
        for uid in sorted(rnd.changed):
            student = students[uid]
            if not student.active or student.email is None:
                continue
            want = Member(uid, student.email, student.name, tuple(sorted(rnd.earned_now[uid])))
            if course.members.get(uid) != want:
                upserts.append(want)
        # A member leaves when gone from the roster or no longer active; a student's activity
        # changes only with its enrollment, which makes it one of the students judged.
        gone = course.members.keys() - students.keys()
        gone.update(u for u in rnd.changed if u in course.members and not students[u].active)
        return upserts, sorted(gone)

    def _publish(self, course: CourseState, rnd: _Round, out: list[Command]) -> None:
        """The ranking is derived from the members and unrevoked awards, and published when
        it differs from the one Credentials shows. A full round derives it afresh and
        compares it with the one it read; an incremental round moves only the users whose
        awards or membership changed in the cached one (:func:`rerank`), and does nothing
        when none did. With no cached ranking (a crash or a failed publish), it is derived
        and published."""
        shown: tuple[LeaderboardEntry, ...] | None
        if rnd.full:
            shown = tuple(rnd.leaderboard)
            entries = leaderboard(course.members, course.live_awards, shown)
        elif course.leaderboard is not None:
            return  # nothing that ranks changed since it was published
        elif rnd.board_base is not None:
            shown = rnd.board_base
            moved = {uid: self._badges_held(course, uid) for uid in rnd.rank_users}
            entries = rerank(shown, moved)
        else:
            shown = None
            entries = leaderboard(course.members, course.live_awards)
        if entries == shown:
            course.leaderboard = entries
            return
        command = PublishLeaderboard(
            self._take_id(), course.course_id, course.issuer_id, course.group_id, entries
        )
        self._track(course, rnd, "leaderboard", "leaderboard", command, out)

    def _badges_held(self, course: CourseState, user_id: int) -> int | None:
        """How many badge classes a member holds unrevoked; ``None`` for a non-member."""
        if user_id not in course.members:
            return None
        return sum(user_id in holders for holders in course.live_awards.values())

    def _rank_moves(self, course: CourseState, rnd: _Round, user_id: int) -> None:
        """A user's awards or membership changed: the cached ranking no longer holds."""
        if course.leaderboard is not None:
            rnd.board_base, course.leaderboard = course.leaderboard, None
        rnd.rank_users.add(user_id)

    def _acknowledged(
        self, course: CourseState, rnd: _Round, pending: _Pending, event: WriteAcknowledged
    ) -> None:
        """A write Credentials acknowledged is a fact: the cached view takes it in."""
        command = pending.command
        if isinstance(command, IssueAssertion):
            try:
                entity_id = credentials.parse_assertion(event.record).entity_id
            except Malformed:
                entity_id = ""  # committed all the same; the next read will name it
            course.awarded[pending.key] = entity_id
            course.outbox.pop(pending.key, None)
            course.live_awards.setdefault(command.badge_class, set()).add(command.user_id)
            self._rank_moves(course, rnd, command.user_id)
        elif isinstance(command, UpsertMember):
            member = Member(command.user_id, command.email, command.name, command.earned)
            if course.members.setdefault(command.user_id, member) is member:
                self._rank_moves(course, rnd, command.user_id)  # a new member is ranked
            course.members[command.user_id] = member
        elif isinstance(command, RemoveMember):
            self._removed(course, rnd, command.user_id)
        elif isinstance(command, PublishLeaderboard):
            course.leaderboard = command.entries

    def _removed(self, course: CourseState, rnd: _Round, user_id: int) -> None:
        course.members.pop(user_id, None)
        self._rank_moves(course, rnd, user_id)

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
            self._removed(course, rnd, command.user_id)  # already gone: the goal is met
        elif failure is not Failure.NOT_FOUND and retry:
            self._retry(course, rnd, pending, out)
        else:
            raise RoundAborted(reason)

    def _retry(
        self, course: CourseState, rnd: _Round, pending: _Pending, out: list[Command]
    ) -> None:
        again = replace(pending.command, request_id=self._take_id())
        self._track(course, rnd, pending.kind, pending.key, again, out, pending.attempt + 1)


def _same_enrollment(a: Student, b: Student) -> bool:
    """Whether two students differ in nothing an enrollment says (their emails aside)."""
    return (a.name, a.current_score, a.active) == (b.name, b.current_score, b.active)


def _earned_by(
    rules: tuple[AwardRule, ...],
    snap: CourseSnapshot,
    uid: int,
    fresh_modules: bool,
    cached: frozenset[str] | None,
) -> frozenset[str]:
    """One student's badges now. A module rule whose progress this round did not read
    (``fresh_modules`` false) keeps the student's last judgement (see the module docstring)."""
    got = set()
    for rule in rules:
        if uses_modules(rule) and not fresh_modules:
            if cached is not None and rule.badge_class in cached:
                got.add(rule.badge_class)
        elif meets(rule, snap, uid):
            got.add(rule.badge_class)
    return frozenset(got)


# -- record parsers, by list --------------------------------------------------------------


def _assignment(rnd: _Round, command: Fetch, record: object) -> None:
    a = canvas.parse_assignment(record)
    rnd.snapshot.assignments[a.assignment_id] = a


def _quiz(rnd: _Round, command: Fetch, record: object) -> None:
    quiz_id, assignment_id = canvas.parse_quiz(record)
    if assignment_id is not None:
        rnd.snapshot.quizzes[quiz_id] = assignment_id


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


def _leaderboard(rnd: _Round, command: Fetch, record: object) -> None:
    rnd.leaderboard.append(credentials.parse_leaderboard_entry(record))


# Submissions, enrollments, users and assertions are parsed a page at a time (see _page).
_PARSERS: dict[CanvasList | CredentialsList, Callable[[_Round, Fetch, object], None]] = {
    CanvasList.ASSIGNMENTS: _assignment,
    CanvasList.QUIZZES: _quiz,
    CanvasList.MODULES: _module,
    CredentialsList.MEMBERS: _member,
    CredentialsList.LEADERBOARD: _leaderboard,
}
