"""What a round is, and what every part of the engine shares while rounds run.

A round of one course is a :class:`Round`: what it has read so far, what it judged, and the
requests still outstanding (:class:`Pending`). :class:`Rounds` holds the engine's state
(courses, rounds in flight, request ids) and the few moves every part makes: tracking a
request, retrying one, and noting that a user's rank moved in the cached leaderboard. The
engine is split by concern over it: :mod:`sync_core.reading` (what a round reads),
:mod:`sync_core.judging` (how it judges), :mod:`sync_core.awarding` (how an award is
checked, issued and settled) and :mod:`sync_core.engine` (the rest of the writing, the
schedule and the public API).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum

from sync_core.canvas import CourseSnapshot, Student
from sync_core.commands import Command, FetchCanvasPage, FetchCredentialsPage, LeaderboardEntry
from sync_core.credentials import Assertion, Member
from sync_core.schedule import Policy
from sync_core.state import CourseState, Quarantined

PER_PAGE = (("per_page", "100"),)
Fetch = FetchCanvasPage | FetchCredentialsPage
MAX_QUARANTINE = 100  # per course and round; enough to diagnose, bounded in size


class Phase(Enum):
    IDLE = "idle"
    READING = "reading"
    WRITING = "writing"
    PUBLISHING = "publishing"


@dataclass
class Pending:
    kind: str  # "read" | "award" | "member" | "leaderboard"
    key: str
    command: Command
    attempt: int = 1


@dataclass
class Round:
    full: bool
    started_at: float
    heard_at: float  # the last answer (or throttled request sent again): see round_timeout
    phase: Phase = Phase.READING
    pending: dict[int, Pending] = field(default_factory=dict)
    # Throttled requests, in order, waiting to be sent again within the round once
    # ``throttled_until`` has passed (see SyncEngine._throttled).
    parked: list[Pending] = field(default_factory=list)
    throttled_until: float = 0.0
    snapshot: CourseSnapshot = field(default_factory=CourseSnapshot)
    emails: dict[int, str | None] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    assertions: list[Assertion] = field(default_factory=list)
    leaderboard: list[LeaderboardEntry] = field(default_factory=list)  # as read, in order
    board_unreadable: bool = False  # a leaderboard row was quarantined
    cursors: set[str] = field(default_factory=set)
    max_graded_at: float | None = None
    quarantine: list[Quarantined] = field(default_factory=list)
    doubtful: bool = False  # an award's outcome is unknown: come back soon to settle it
    # An enrollment row was quarantined: the student it named may still be enrolled, so no
    # member is removed this round (removing on data we could not read loses a membership).
    roster_unsure: bool = False
    module_positions: dict[int, set[int]] = field(default_factory=dict)
    modules_read: set[int] = field(default_factory=set)  # students whose progress was read
    # Students whose own reads Canvas refused (404: they left the course after the roster
    # was read): not judged this round, kept as the last round left them (see _skip).
    skipped: set[int] = field(default_factory=set)
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
    checked: dict[str, list[Assertion]] = field(default_factory=dict)  # award key -> as read
    missing: set[str] = field(default_factory=set)  # badge classes that answered 404
    wake_at: float | None = None  # the earliest an uncertain award can be settled
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


class Rounds:
    """The engine's state while rounds run, and the moves every part of it makes."""

    policy: Policy
    now: float
    _courses: dict[int, CourseState]
    _rounds: dict[int, Round]
    _owner: dict[int, int]  # request id -> course id
    _next_request_id: int

    def _take_id(self) -> int:
        request_id = self._next_request_id
        self._next_request_id += 1
        return request_id

    def _track(
        self,
        course: CourseState,
        rnd: Round,
        kind: str,
        key: str,
        command: Command,
        out: list[Command],
        attempt: int = 1,
    ) -> None:
        rnd.pending[command.request_id] = Pending(kind, key, command, attempt)
        self._owner[command.request_id] = course.course_id
        out.append(command)

    def _retry(self, course: CourseState, rnd: Round, pending: Pending, out: list[Command]) -> None:
        again = replace(pending.command, request_id=self._take_id())
        self._track(course, rnd, pending.kind, pending.key, again, out, pending.attempt + 1)

    def _rank_moves(self, course: CourseState, rnd: Round, user_id: int) -> None:
        """A user's awards or membership changed: the cached ranking no longer holds."""
        if course.leaderboard is not None:
            rnd.board_base, course.leaderboard = course.leaderboard, None
        rnd.rank_users.add(user_id)
