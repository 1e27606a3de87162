"""The engine's durable state, and its JSON form.

Only what must survive a crash is here: each course's schedule, watermark, merged
submissions, award outbox and what it has awarded. Rounds in flight are deliberately not
durable: reads are idempotent and are simply redone, and an award that was in flight when
the state was saved is written as ``uncertain``, so after a restore it is resolved by
reading the assertions before anything is re-issued (the outbox rule).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sync_core.canvas import Submission
from sync_core.rules import AwardRule, rule_from_dict, rule_to_dict

FORMAT_VERSION = 1


class StateError(ValueError):
    """Saved state that cannot be restored: corrupt, truncated, or from a newer version."""


class AwardStatus(Enum):
    """An outbox entry's life: earned, then awarded once.

    PENDING: earned, to be issued. IN_FLIGHT: an IssueAssertion is outstanding.
    UNCERTAIN: the last attempt may have committed; issue nothing until a later read of
    the assertions settles it. BLOCKED: Credentials refused it for good (its reason is kept);
    retried on the next full resync.
    """

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    UNCERTAIN = "uncertain"
    BLOCKED = "blocked"


@dataclass
class OutboxEntry:
    user_id: int
    badge_class: str
    status: AwardStatus
    reason: str = ""


@dataclass(frozen=True)
class Quarantined:
    """A record left out of a round, with why; the rest of the course synced."""

    resource: str
    reason: str


@dataclass
class CourseState:
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
    watermark: float | None = None
    submissions: dict[tuple[int, int], Submission] = field(default_factory=dict)
    # "user:badge" -> assertion entityId ("" when confirmed only by an earlier read)
    awarded: dict[str, str] = field(default_factory=dict)
    outbox: dict[str, OutboxEntry] = field(default_factory=dict)
    known_emails: dict[int, list[str]] = field(default_factory=dict)
    quarantine: list[Quarantined] = field(default_factory=list)

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
    if data["format"] != FORMAT_VERSION:
        raise StateError(
            f"state format {data['format']!r} is not {FORMAT_VERSION}: "
            "written by a different credsync version; refusing to guess"
        )
    try:
        courses = [_course_from_dict(c) for c in data["courses"]]
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
        "watermark": c.watermark,
        "submissions": [
            [s.user_id, s.assignment_id, s.score, s.excused, s.graded_at]
            for _, s in sorted(c.submissions.items())
        ],
        "awarded": dict(sorted(c.awarded.items())),
        "outbox": [
            # An award in flight at save time may or may not commit: restore it as uncertain.
            [
                e.user_id,
                e.badge_class,
                (AwardStatus.UNCERTAIN if e.status is AwardStatus.IN_FLIGHT else e.status).value,
                e.reason,
            ]
            for _, e in sorted(c.outbox.items())
        ],
        "known_emails": {str(uid): emails for uid, emails in sorted(c.known_emails.items())},
        "quarantine": [[q.resource, q.reason] for q in c.quarantine],
    }


def _course_from_dict(d: dict[str, Any]) -> CourseState:
    submissions = [
        Submission(int(u), int(a), None if s is None else float(s), bool(x), g)
        for u, a, s, x, g in d["submissions"]
    ]
    outbox = [OutboxEntry(int(u), str(b), AwardStatus(s), str(r)) for u, b, s, r in d["outbox"]]
    return CourseState(
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
        watermark=d["watermark"],
        submissions={(s.user_id, s.assignment_id): s for s in submissions},
        awarded={str(k): str(v) for k, v in d["awarded"].items()},
        outbox={award_key(e.user_id, e.badge_class): e for e in outbox},
        known_emails={int(k): [str(e) for e in v] for k, v in d["known_emails"].items()},
        quarantine=[Quarantined(str(r), str(m)) for r, m in d["quarantine"]],
    )
