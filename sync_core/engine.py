"""The sync engine: events in, commands out.

A course's life is a loop of *rounds*. A round reads what it needs from both sides
(READING), computes desired state and writes the difference (WRITING), then publishes the
leaderboard derived from the awards (PUBLISHING), and goes back to IDLE until its next due
time. Any failure that leaves the picture incomplete aborts the round and backs the course
off; nothing partial is acted on, and the next round starts from a fresh read. (A throttled
request is not such a failure: it waits within its round, :meth:`SyncEngine._throttled`; nor
is one student's 404 after they left mid-round, :meth:`SyncEngine._skip`.) Awards pass
through the outbox in :mod:`sync_core.state`, so an award whose outcome is unknown is never
issued again before a read that can tell shows it is missing (:mod:`sync_core.awarding`).

The engine is split by concern: :mod:`sync_core.rounds` (what a round is, and what every
part shares), :mod:`sync_core.reading` (what a round reads), :mod:`sync_core.judging` (how
it judges), :mod:`sync_core.awarding` (how an award is checked, issued, settled, held or
revoked), and this module: the public API, the schedule, members, the leaderboard, and what
each answer means.

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
  or module progress changed (all of them when an assignment or quiz changed). It reads no
  badge class whole: before each award, in either kind of round, it reads that student's
  awards of the class, so an award is never issued without a read just before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sync_core import credentials
from sync_core.awarding import Awarding, _is_class_read, _unchecked
from sync_core.canvas import Malformed
from sync_core.commands import (
    Command,
    FetchCredentialsPage,
    IssueAssertion,
    LeaderboardEntry,
    PublishLeaderboard,
    RemoveMember,
    UpsertMember,
)
from sync_core.credentials import Member
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
from sync_core.judging import judge, new_awards
from sync_core.reconcile import leaderboard, plan_members, rerank
from sync_core.rounds import MAX_QUARANTINE, Pending, Phase, Round, RoundAborted
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

_REFUSED = frozenset({Failure.THROTTLED, Failure.AUTH, Failure.REJECTED, Failure.NOT_FOUND})
"""Answers that say a write was not stored."""
_CACHED_WRITES = ("member", "leaderboard")
"""Writes whose effect the cached Credentials view records when acknowledged, and an
incremental round trusts (see :meth:`SyncEngine._may_land`)."""


def _refused(entry: OutboxEntry) -> None:
    """Credentials said no to this attempt: nothing of it can land. (An earlier attempt that
    was uncertain was settled absent before this one was sent, so none of it can either.)"""
    entry.status, entry.attempted_at = AwardStatus.PENDING, None


__all__ = ["MAX_QUARANTINE", "CourseStatus", "Phase", "RoundAborted", "SyncEngine"]


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


def _resumes_at(rnd: Round, next_due: float) -> float:
    """When a course in a round needs the clock next: when its throttled wait ends, if it is
    only waiting out the throttle (an adapter may sleep until then), else when it was due."""
    return rnd.throttled_until if rnd.parked and not rnd.pending else next_due


class SyncEngine(Awarding):
    """Level-triggered reconciler for every linked course. Pure: no I/O, clock or randomness.

    Feed it events with :meth:`handle` and execute the commands it returns; answer each
    command with exactly one response event. Persist :meth:`to_json` after every call
    (before executing the returned commands) to survive crashes.
    """

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.now = 0.0
        self._courses: dict[int, CourseState] = {}
        self._rounds: dict[int, Round] = {}
        self._owner: dict[int, int] = {}  # request id -> course id
        self._next_request_id = 1
        self._clock_started = False
        # Awards outstanding when their round was aborted: request id -> (course, award key).
        # Not saved by to_json: a restarted worker hears no answer to a request the crashed
        # one sent, and the outbox already holds each such award as uncertain.
        self._orphans: dict[int, tuple[int, str]] = {}

    # -- public API -------------------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        out: list[Command] = []
        if isinstance(event, Tick):
            self.now = max(self.now, event.now) if self._clock_started else event.now
            self._clock_started = True
            for cid, rnd in sorted(self._rounds.items()):
                if rnd.pending and self.now - rnd.heard_at >= self.policy.round_timeout:
                    self._abort(self._courses[cid], "round timed out: a response never came")
                else:
                    self._resume(self._courses[cid], rnd, out)
        elif isinstance(event, CourseLinked):
            self._link(event)
        elif isinstance(event, UpdateNowRequested):
            self._update_now(event.course_id, out)
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
            self._orphaned(event)  # an answer for an aborted round: the next round re-reads
            return
        course = self._courses[cid]
        try:
            self._respond(course, rnd, pending, event, out)
        except RoundAborted as abort:
            entry = course.outbox.get(pending.key) if pending.kind == "check" else None
            if entry is not None:
                _unchecked(entry)  # the check that ended the round sent nothing to store
            self._abort(course, str(abort), abort.retry_after)

    def _orphaned(self, event: PageReceived | WriteAcknowledged | RequestFailed) -> None:
        """The answer to an award whose round was aborted while it was outstanding still
        settles it: stored, refused for sure, or (no answer) still uncertain. Reads and
        other writes of an aborted round are simply redone by the next one."""
        cid, key = self._orphans.pop(event.request_id, (None, ""))
        course = None if cid is None else self._courses.get(cid)
        entry = None if course is None else course.outbox.get(key)
        if course is None or entry is None or entry.status is not AwardStatus.UNCERTAIN:
            return
        if isinstance(event, WriteAcknowledged) or (
            isinstance(event, RequestFailed) and event.failure is Failure.DUPLICATE
        ):
            del course.outbox[key]
            course.awarded[key] = ""  # the next full round reads its id
            course.leaderboard = None  # the ranking moved: derived and published again
            course.live_awards.setdefault(entry.badge_class, set()).add(entry.user_id)
            self._shared(course, entry.user_id, entry.badge_class)
        elif isinstance(event, RequestFailed) and event.failure in _REFUSED:
            _refused(entry)

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
                    next_due=c.next_due if rnd is None else _resumes_at(rnd, c.next_due),
                    failures=c.failures,
                    last_error=c.last_error,
                    last_success_at=c.last_success_at,
                    last_full_at=c.last_full_at,
                    pending_awards=counts[AwardStatus.PENDING]
                    + counts[AwardStatus.CHECKING]
                    + counts[AwardStatus.IN_FLIGHT],
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

    def _update_now(self, course_id: int, out: list[Command]) -> None:
        """A teacher pressed "update now": a full round at once. As it overrides a backoff,
        it overrides the throttled wait of a round in progress (whose requests are sent
        again now; Canvas may throttle them again), so that round ends and the full one
        starts as soon as they are answered."""
        course = self._course(course_id)
        course.force_full = True
        course.next_due = min(course.next_due, self.now)
        current = self._rounds.get(course_id)
        if current is not None:
            current.throttled_until = min(current.throttled_until, self.now)
            self._resume(course, current, out)

    def _start_due(self, out: list[Command]) -> None:
        if not self._clock_started:
            return  # no Tick yet: "now" is unknown, so nothing can be due
        for cid, course in sorted(self._courses.items()):
            if cid not in self._rounds and course.next_due <= self.now:
                self._start_round(course, out)

    def _finish(self, course: CourseState, rnd: Round) -> None:
        del self._rounds[course.course_id]
        course.failures, course.last_error = 0, None
        course.last_success_at = self.now
        course.quarantine = rnd.quarantine
        # What this round judged becomes the cache the next incremental round compares with.
        course.students, course.earned = rnd.students, rnd.earned_now
        course.assignments, course.quizzes = rnd.snapshot.assignments, rnd.snapshot.quizzes
        if rnd.full:
            course.last_full_at = self.now
            if course.reread_after is not None and rnd.started_at >= course.reread_after:
                course.reread_after = None  # what may have landed late has been read
        if rnd.max_graded_at is not None:
            course.watermark = max(course.watermark or rnd.max_graded_at, rnd.max_graded_at)
        if course.force_full:
            course.next_due = self.now
        elif rnd.doubtful:  # come back when the doubt can be settled, or soon
            wake = self.now + self.policy.backoff_base
            if rnd.wake_at is not None:
                wake = max(wake, rnd.wake_at)
            course.next_due = min(wake, self.now + self.policy.poll_interval)
        else:
            course.next_due = self.now + self.policy.poll_interval

    def _abort(self, course: CourseState, reason: str, retry_after: float | None = None) -> None:
        rnd = self._rounds.pop(course.course_id)
        for request_id, pending in rnd.pending.items():
            self._owner.pop(request_id, None)
            entry = course.outbox.get(pending.key) if pending.kind in ("award", "check") else None
            if entry is not None and pending.kind == "award":
                # Sent, or about to be: uncertain, unless its answer still comes (_orphaned).
                entry.status = AwardStatus.UNCERTAIN
                self._orphans[request_id] = (course.course_id, pending.key)
            elif entry is not None:
                _unchecked(entry)
            elif pending.kind in _CACHED_WRITES:
                self._reread_later(course)  # sent, and never answered: it may land
        for pending in rnd.parked:  # turned away by the throttle: nothing of them can land
            entry = course.outbox.get(pending.key) if pending.kind == "check" else None
            if entry is not None:
                _unchecked(entry)
        course.failures += 1
        course.last_error = reason
        course.quarantine = rnd.quarantine
        delay = backoff_delay(self.policy, course.course_id, course.failures)
        course.next_due = self.now + max(delay, retry_after or 0.0)

    # -- answers ----------------------------------------------------------------------

    def _respond(
        self, course: CourseState, rnd: Round, pending: Pending, event: Event, out: list[Command]
    ) -> None:
        rnd.heard_at = self.now
        if isinstance(event, RequestFailed):
            self._failed(course, rnd, pending, event, out)
        elif isinstance(event, PageReceived) and pending.kind in ("read", "check"):
            self._page(course, rnd, pending, event, out)
        elif isinstance(event, WriteAcknowledged) and pending.kind not in ("read", "check"):
            self._acknowledged(course, rnd, pending, event)
        else:
            raise RoundAborted(f"{type(event).__name__} does not answer a {pending.kind} request")
        self._resume(course, rnd, out)

    def _resume(self, course: CourseState, rnd: Round, out: list[Command]) -> None:
        """Send the next throttled request again if its wait is over, and go on to the
        round's next step once nothing is outstanding or waiting."""
        self._release(course, rnd, out)
        if not rnd.pending and not rnd.parked:
            self._advance(course, rnd, out)

    # -- judging and writing ------------------------------------------------------------

    def _advance(self, course: CourseState, rnd: Round, out: list[Command]) -> None:
        if rnd.phase is Phase.READING and not rnd.judged:
            judge(course, rnd)
            rnd.judged = True
            new_awards(course, rnd)
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

    def _write(self, course: CourseState, rnd: Round, out: list[Command]) -> None:
        snap, students, earned_now = rnd.snapshot, rnd.students, rnd.earned_now
        if rnd.full:  # the fresh view replaces the cache; the ranking is derived at publishing
            course.members = dict(rnd.members)
            course.leaderboard = None
            course.live_awards = {}
            course.unavailable = set(rnd.missing)  # every class was read: these answered 404
        if rnd.read_badges:
            self._take_in_assertions(course, rnd, out)

        for uid, badge in rnd.new_awards:
            key = award_key(uid, badge)
            if key not in course.awarded and key not in course.outbox:
                course.outbox[key] = OutboxEntry(uid, badge, AwardStatus.PENDING)
        for key, entry in list(course.outbox.items()):
            if entry.badge_class not in earned_now.get(entry.user_id, frozenset()):
                if entry.status is not AwardStatus.BLOCKED:
                    del course.outbox[key]
            elif entry.status is AwardStatus.BLOCKED and rnd.full:
                entry.status, entry.reason = AwardStatus.PENDING, ""  # worth another try

        unavailable = course.unavailable
        if unavailable:  # a member's progress names only classes Credentials can show
            earned_now = {uid: b - unavailable for uid, b in earned_now.items()}
        upserts: Sequence[Member]
        removals: Sequence[int]
        if rnd.full:
            plan = plan_members(snap, earned_now, course.members)
            upserts, removals = plan.upserts, plan.removals
        else:
            upserts, removals = self._member_changes(course, rnd, earned_now)
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
            student = students.get(entry.user_id)
            if student is None or student.email is None:
                continue  # no address to award to this round: held
            if entry.status in (AwardStatus.PENDING, AwardStatus.UNCERTAIN):
                self._check(course, rnd, key, entry, out)

    def _member_changes(
        self, course: CourseState, rnd: Round, earned_now: dict[int, frozenset[str]]
    ) -> tuple[list[Member], list[int]]:
        """:func:`~sync_core.reconcile.plan_members` for an incremental round: the students
        judged this round against the cached members, and cached members no longer active."""
        upserts = []
        students = rnd.students
        for uid in sorted(rnd.changed):
            student = students[uid]
            if not student.active or student.email is None:
                continue
            want = Member(uid, student.email, student.name, tuple(sorted(earned_now[uid])))
            if course.members.get(uid) != want:
                upserts.append(want)
        # A member leaves when gone from the roster or no longer active; a student's activity
        # changes only with its enrollment, which makes it one of the students judged.
        gone = course.members.keys() - students.keys()
        gone.update(u for u in rnd.changed if u in course.members and not students[u].active)
        return upserts, sorted(gone)

    def _publish(self, course: CourseState, rnd: Round, out: list[Command]) -> None:
        """The ranking is derived from the members and unrevoked awards, and published when
        it differs from the one Credentials shows. A full round derives it afresh and
        compares it with the one it read; an incremental round moves only the users whose
        awards or membership changed in the cached one (:func:`rerank`), and does nothing
        when none did. With no cached ranking (a crash or a failed publish), it is derived
        and published."""
        shown: tuple[LeaderboardEntry, ...] | None
        if rnd.full:
            # A row left out as unreadable means the board shown is not the one read: it
            # is published again whatever the readable rows say.
            shown = None if rnd.board_unreadable else tuple(rnd.leaderboard)
            entries = leaderboard(course.members, course.live_awards, shown or ())
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

    def _acknowledged(
        self, course: CourseState, rnd: Round, pending: Pending, event: WriteAcknowledged
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
            self._shared(course, command.user_id, command.badge_class)
        elif isinstance(command, UpsertMember):
            member = Member(command.user_id, command.email, command.name, command.earned)
            if course.members.setdefault(command.user_id, member) is member:
                self._rank_moves(course, rnd, command.user_id)  # a new member is ranked
            course.members[command.user_id] = member
        elif isinstance(command, RemoveMember):
            self._removed(course, rnd, command.user_id)
        elif isinstance(command, PublishLeaderboard):
            course.leaderboard = command.entries

    def _removed(self, course: CourseState, rnd: Round, user_id: int) -> None:
        course.members.pop(user_id, None)
        self._rank_moves(course, rnd, user_id)

    def _failed(
        self,
        course: CourseState,
        rnd: Round,
        pending: Pending,
        event: RequestFailed,
        out: list[Command],
    ) -> None:
        """One failed request. Idempotent requests are retried at once, a bounded number of
        times; an award is never retried blindly; a throttled request waits within its
        round (:meth:`_throttled`)."""
        failure = event.failure
        reason = f"{pending.key}: {failure.value}" + (f" ({event.detail})" if event.detail else "")
        command = pending.command
        retry = pending.attempt < self.policy.request_attempts
        if failure is Failure.THROTTLED:
            self._throttled(course, rnd, pending, event.retry_after)
            return
        if failure is Failure.NOT_FOUND and pending.key.startswith("modules:"):
            self._skip(rnd, int(pending.key.removeprefix("modules:")), reason)
            return
        if pending.kind == "check":
            self._check_failed(course, rnd, pending, failure, retry, out)
            return
        if failure is Failure.NOT_FOUND and _is_class_read(command):
            assert isinstance(command, FetchCredentialsPage) and command.badge_class is not None
            self._class_missing(course, rnd, command.badge_class)
            return
        if pending.kind == "award":
            entry = course.outbox[pending.key]
            if failure is Failure.DUPLICATE:  # Credentials says a live award is there
                self._awarded(course, rnd, pending.key, "", live=True)
            elif failure is Failure.NOT_FOUND:
                _refused(entry)  # refused: nothing was stored
                self._class_missing(course, rnd, entry.badge_class)
            elif failure is Failure.REJECTED:
                entry.status, entry.reason = AwardStatus.BLOCKED, reason
                entry.attempted_at = None  # refused: nothing of it can land
                rnd.note("award", reason)
            elif failure is Failure.AUTH and retry:
                self._retry(course, rnd, pending, out)  # refused at the door: not issued
            elif failure is Failure.AUTH:
                _refused(entry)
                raise RoundAborted(reason)
            else:
                # It may have committed. Finish the round without it, and come back once
                # a read can tell (the settle window) before deciding anything.
                entry.status = AwardStatus.UNCERTAIN
                self._doubt(rnd, entry)
            return
        if pending.kind == "revoke" and failure in (Failure.REJECTED, Failure.NOT_FOUND):
            rnd.note("revoke", reason)  # already revoked, or gone: the duplicate is not live
        elif pending.kind == "revoke" and not retry:
            rnd.note("revoke", reason)  # the next full round sees it and tries again
        elif failure is Failure.REJECTED and pending.kind != "read":
            rnd.note(pending.kind, reason)
        elif failure is Failure.NOT_FOUND and isinstance(command, RemoveMember):
            self._removed(course, rnd, command.user_id)  # already gone: the goal is met
        elif failure is not Failure.NOT_FOUND and retry:
            self._may_land(course, pending, failure)
            self._retry(course, rnd, pending, out)
        else:
            self._may_land(course, pending, failure)
            raise RoundAborted(reason)

    def _may_land(self, course: CourseState, pending: Pending, failure: Failure) -> None:
        """A member or leaderboard write whose outcome is unknown may be stored late, after
        the writes that followed it (a leaderboard published since, a member added back),
        and the cached view would never know: read Credentials anew once the settle window,
        which bounds how late a write lands and how far a read lags, has passed."""
        if failure is Failure.AMBIGUOUS and pending.kind in _CACHED_WRITES:
            self._reread_later(course)

    def _reread_later(self, course: CourseState) -> None:
        settled = self.now + self.policy.award_settle_window
        course.reread_after = max(course.reread_after or settled, settled)

    def _throttled(
        self, course: CourseState, rnd: Round, pending: Pending, retry_after: float | None
    ) -> None:
        """The throttle turned the request away before doing anything (an award too never
        reached the server). It waits in the round and is sent again once the wait is
        over: what ``Retry-After`` asks, at least a second, at most
        ``Policy.max_retry_after``. Aborting instead would throw away everything read so far
        and start again from the first page, so a course whose round costs more than
        Canvas's bucket holds would never finish one; waiting lets it finish at the pace
        Canvas admits. Throttled waits do not count against ``request_attempts``: the
        request was refused, not failed, and the round timeout still bounds a round that
        hears nothing."""
        if pending.kind == "award":
            _refused(course.outbox[pending.key])  # not sent for now: checked again first
        wait = self.policy.backoff_base if retry_after is None else retry_after
        wait = min(max(wait, 1.0), self.policy.max_retry_after)
        rnd.throttled_until = max(rnd.throttled_until, self.now + wait)
        rnd.parked.append(pending)

    def _release(self, course: CourseState, rnd: Round, out: list[Command]) -> None:
        """Send the next throttled request again once its wait is over: one at a time (the
        next when this one is answered), so a throttled course goes on at the pace the
        bucket drains instead of in a burst that the throttle turns away again. An award is
        checked again first (:meth:`_check`), as every award is just before it is issued:
        while it waited, a teacher may have awarded or revoked it by hand, or another
        course sharing its class may have awarded it (then it is no longer pending, and
        nothing is sent for it)."""
        while rnd.parked and not rnd.pending and self.now >= rnd.throttled_until:
            pending = rnd.parked.pop(0)
            rnd.heard_at = self.now
            if pending.kind == "award":
                entry = course.outbox.get(pending.key)
                if entry is not None and entry.status is AwardStatus.PENDING:
                    self._check(course, rnd, pending.key, entry, out)
            else:
                again = replace(pending.command, request_id=self._take_id())
                self._track(course, rnd, pending.kind, pending.key, again, out, pending.attempt)

    def _skip(self, rnd: Round, uid: int, reason: str) -> None:
        """One student's own read answered 404: Canvas answers so for anyone who is no
        longer a student of the course, so the student left after the roster was read. That
        student is left out of this round (nothing written for them, their last judgement
        kept) with the reason in ``status()``; everyone else is judged and written, and the
        next round's roster shows whether they really left. Aborting the round instead
        would hold up the whole course for one student, every time one leaves mid-round."""
        rnd.skipped.add(uid)
        rnd.modules_read.discard(uid)
        rnd.snapshot.modules.pop(uid, None)
        rnd.snapshot.required_modules.pop(uid, None)
        rnd.note(f"modules:{uid}", f"{reason}; student skipped this round (left the course?)")
