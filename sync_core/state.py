"""The engine's durable state, and its JSON form.

Only what must survive a crash is here: each course's schedule, watermark, the scores of
its submissions merged over rounds, award outbox and what it has awarded, and the cache
that lets an incremental round skip re-reading Credentials (see :class:`CourseState`).
Rounds in flight are deliberately not durable: reads are idempotent and are simply redone,
and an award that was in flight when the state was saved is written as ``uncertain``, so
after a restore it is resolved by reading the assertions before anything is re-issued (the
outbox rule).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sync_core.canvas import Assignment, Student
from sync_core.commands import LeaderboardEntry
from sync_core.credentials import Member
from sync_core.reconcile import owners_by_email
from sync_core.rules import AwardRule, rule_from_dict, rule_to_dict

FORMAT_VERSION = 2
"""Version 2 added the Credentials cache. A version 1 state still loads: its cache is empty
and its course is marked for a full resync, which fills it."""


class StateError(ValueError):
    """Saved state that cannot be restored: corrupt, truncated, or from a newer version."""


class AwardStatus(Enum):
    """An outbox entry's life: earned, then awarded once.

    PENDING: earned, to be issued. CHECKING: the student's assertions of the class are
    being read, just before issuing. IN_FLIGHT: an IssueAssertion is outstanding.
    UNCERTAIN: the last attempt may have committed; issue nothing until a read that started
    ``Policy.award_settle_window`` after that attempt settles it. BLOCKED: Credentials
    refused it, or its badge class cannot be read (the reason is kept); retried on the next
    full resync.
    """

    PENDING = "pending"
    CHECKING = "checking"
    IN_FLIGHT = "in_flight"
    UNCERTAIN = "uncertain"
    BLOCKED = "blocked"


@dataclass
class OutboxEntry:
    user_id: int
    badge_class: str
    status: AwardStatus
    reason: str = ""
    attempted_at: float | None = None  # when the last IssueAssertion for it was sent


@dataclass(frozen=True)
class Quarantined:
    """A record left out of a round, with why; the rest of the course synced."""

    resource: str
    reason: str


@dataclass
class CourseState:
    """One linked course, durably.

    Besides the schedule and the award bookkeeping, it keeps the engine's cached view, in
    the manner of a Kubernetes informer: ``members``, ``live_awards`` and ``leaderboard`` are
    Credentials as the last full round read it, updated by every write Credentials
    acknowledged since (never by a write that failed, so a doubtful write is simply redone);
    ``students``, ``earned``, ``assignments`` and ``quizzes`` are what the last completed
    round computed from Canvas, so an incremental round judges only the students whose data
    changed. ``earned`` is emptied while a round is between judging and finishing, so a
    crash or an abort there makes the next round judge every student again.
    """

    course_id: int
    issuer_id: str
    group_id: str
    rules: tuple[AwardRule, ...]
    next_due: float
    failures: int = 0
    last_error: str | None = None
    last_success_at: float | None = None
    last_full_at: float | None = None
    force_full: bool = False
    # A member or leaderboard write this worker gave up on may still be stored until then
    # (a late commit overwrites what came after it): the first round to start from then on
    # reads Credentials anew (a full round) instead of trusting the cached view.
    reread_after: float | None = None
    watermark: float | None = None
    # assignment -> user -> score a rule may count, merged over rounds (see CourseSnapshot)
    scores: dict[int, dict[int, float]] = field(default_factory=dict)
    # "user:badge" -> assertion entityId ("" when confirmed only by an earlier read)
    awarded: dict[str, str] = field(default_factory=dict)
    outbox: dict[str, OutboxEntry] = field(default_factory=dict)
    known_emails: dict[int, list[str]] = field(default_factory=dict)
    # Derived from known_emails (reconcile.owners_by_email), kept up to date as emails are
    # learnt rather than rebuilt every round; rebuilt on load, never saved.
    owners: dict[str, int] = field(default_factory=dict)
    quarantine: list[Quarantined] = field(default_factory=list)
    students: dict[int, Student] = field(default_factory=dict)
    earned: dict[int, frozenset[str]] = field(default_factory=dict)
    assignments: dict[int, Assignment] = field(default_factory=dict)
    quizzes: dict[int, int] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    live_awards: dict[str, set[int]] = field(default_factory=dict)  # badge class -> holders
    leaderboard: tuple[LeaderboardEntry, ...] | None = None  # None: not known
    # Badge classes whose reads answered 404 (archived, deleted, never created, or of an
    # issuer the token cannot see): their awards are held, the rest of the course syncs.
    unavailable: set[str] = field(default_factory=set)

    @property
    def badge_classes(self) -> tuple[str, ...]:
        return tuple(sorted({rule.badge_class for rule in self.rules}))


def award_key(user_id: int, badge_class: str) -> str:
    return f"{user_id}:{badge_class}"


def dump(courses: Mapping[int, CourseState], next_request_id: int, now: float) -> str:
    return json.dumps(
        {
            "format": FORMAT_VERSION,
            "now": now,
            "next_request_id": next_request_id,
            "courses": [_course_to_dict(c) for _, c in sorted(courses.items())],
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def load(text: str) -> tuple[dict[int, CourseState], int, float]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StateError(f"state is not valid JSON (corrupt or truncated): {exc}") from exc
    if not isinstance(data, dict) or "format" not in data:
        raise StateError("state has no 'format' field: not a credsync engine state")
    if data["format"] not in (1, FORMAT_VERSION):
        raise StateError(
            f"state format {data['format']!r} is not {FORMAT_VERSION} (or 1): "
            "written by a different credsync version; refusing to guess"
        )
    try:
        courses = [_course_from_dict(c, float(data["now"])) for c in data["courses"]]
        return ({c.course_id: c for c in courses}, int(data["next_request_id"]), float(data["now"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"state is damaged: {exc!r}") from exc


def _course_to_dict(c: CourseState) -> dict[str, Any]:
    return {
        "course_id": c.course_id,
        "issuer_id": c.issuer_id,
        "group_id": c.group_id,
        "rules": [rule_to_dict(r) for r in c.rules],
        "next_due": c.next_due,
        "failures": c.failures,
        "last_error": c.last_error,
        "last_success_at": c.last_success_at,
        "last_full_at": c.last_full_at,
        "force_full": c.force_full,
        "reread_after": c.reread_after,
        "watermark": c.watermark,
        "scores": [
            [a, [[u, score] for u, score in sorted(table.items())]]
            for a, table in sorted(c.scores.items())
            if table
        ],
        "awarded": dict(sorted(c.awarded.items())),
        "outbox": [
            # An award in flight at save time may or may not commit: restore it as uncertain.
            # One being checked sent nothing that could commit: restore it as it was.
            [e.user_id, e.badge_class, _saved(e.status).value, e.reason, e.attempted_at]
            for _, e in sorted(c.outbox.items())
        ],
        "known_emails": {str(uid): emails for uid, emails in sorted(c.known_emails.items())},
        "quarantine": [[q.resource, q.reason] for q in c.quarantine],
        "students": [list(s) for _, s in sorted(c.students.items())],
        "earned": {str(uid): sorted(b) for uid, b in sorted(c.earned.items())},
        "assignments": [
            [a.assignment_id, a.points_possible, a.quiz_id, a.is_new_quiz]
            for _, a in sorted(c.assignments.items())
        ],
        "quizzes": [[q, a] for q, a in sorted(c.quizzes.items())],
        "members": [
            [m.user_id, m.email, m.name, list(m.earned)] for _, m in sorted(c.members.items())
        ],
        "live_awards": {b: sorted(uids) for b, uids in sorted(c.live_awards.items())},
        "leaderboard": None
        if c.leaderboard is None
        else [[e.user_id, e.badges] for e in c.leaderboard],
        "unavailable": sorted(c.unavailable),
    }


def _saved(status: AwardStatus) -> AwardStatus:
    if status is AwardStatus.IN_FLIGHT:
        return AwardStatus.UNCERTAIN
    if status is AwardStatus.CHECKING:
        return AwardStatus.PENDING
    return status


def _course_from_dict(d: dict[str, Any], now: float) -> CourseState:
    scores: dict[int, dict[int, float]] = {}
    if "scores" in d:
        for a, table in d["scores"]:
            scores[int(a)] = {int(u): float(s) for u, s in table}
    else:  # format 1 kept whole submissions
        for u, a, s, x, _ in d["submissions"]:
            if s is not None and not x:
                scores.setdefault(int(a), {})[int(u)] = float(s)
    outbox = [_outbox_entry(row, now) for row in d["outbox"]]
    course = CourseState(
        course_id=int(d["course_id"]),
        issuer_id=str(d["issuer_id"]),
        group_id=str(d["group_id"]),
        rules=tuple(rule_from_dict(r) for r in d["rules"]),
        next_due=float(d["next_due"]),
        failures=int(d["failures"]),
        last_error=d["last_error"],
        last_success_at=d["last_success_at"],
        last_full_at=d["last_full_at"],
        force_full=bool(d["force_full"]),
        reread_after=d.get("reread_after"),
        watermark=d["watermark"],
        scores=scores,
        awarded={str(k): str(v) for k, v in d["awarded"].items()},
        outbox={award_key(e.user_id, e.badge_class): e for e in outbox},
        known_emails={int(k): [str(e) for e in v] for k, v in d["known_emails"].items()},
        quarantine=[Quarantined(str(r), str(m)) for r, m in d["quarantine"]],
    )
    course.owners = owners_by_email(course.known_emails)
    if "members" not in d:  # format 1: no cache yet; a full resync fills it
        course.force_full = True
        return course
    course.students = {
        int(u): Student(int(u), str(n), None if e is None else str(e), _opt_float(s), bool(a))
        for u, n, e, s, a in d["students"]
    }
    course.earned = {int(u): frozenset(str(b) for b in bs) for u, bs in d["earned"].items()}
    course.assignments = {
        int(i): Assignment(int(i), _opt_float(p), None if q is None else int(q), bool(n))
        for i, p, q, n in d["assignments"]
    }
    course.quizzes = {int(q): int(a) for q, a in d["quizzes"]}
    course.members = {
        int(u): Member(int(u), str(e), str(n), tuple(str(b) for b in bs))
        for u, e, n, bs in d["members"]
    }
    course.live_awards = {str(b): {int(u) for u in us} for b, us in d["live_awards"].items()}
    course.unavailable = {str(b) for b in d.get("unavailable", [])}
    board = d["leaderboard"]
    course.leaderboard = (
        None if board is None else tuple(LeaderboardEntry(int(u), int(n)) for u, n in board)
    )
    return course


def _outbox_entry(row: list[Any], now: float) -> OutboxEntry:
    """Before the settle window, an entry had no attempt time: an uncertain one is taken as
    attempted when the state was saved, so it waits one whole window (the safe side)."""
    user_id, badge_class, status, reason, *rest = row
    entry = OutboxEntry(int(user_id), str(badge_class), AwardStatus(status), str(reason))
    if rest:
        entry.attempted_at = None if rest[0] is None else float(rest[0])
    elif entry.status is AwardStatus.UNCERTAIN:
        entry.attempted_at = now
    return entry


def _opt_float(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number or null, got {value!r}")
    return float(value)
