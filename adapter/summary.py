"""One line per linked course, for an operator reading ``credsync sync`` output.

The engine never gives up on a course, so the line must say why a course is behind (its
last error and when it is retried) and what is waiting in the award outbox; an uncertain
award in particular is not an error, just an award to be settled by the next read.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sync_core.engine import CourseStatus, SyncEngine


def summary(engine: SyncEngine) -> list[str]:
    return [_line(status) for status in engine.status()]


def _line(s: CourseStatus) -> str:
    if s.failures:
        failing = f"FAILING ({s.failures}x: {s.last_error})"
        head = f"course {s.course_id}: {failing}, retry {_at(s.next_due)}"
    else:
        head = (
            f"course {s.course_id}: ok, last sync {_at(s.last_success_at)}, next {_at(s.next_due)}"
        )
    parts = [head]
    awards = {
        "pending": s.pending_awards,
        "uncertain": s.uncertain_awards,
        "blocked": s.blocked_awards,
    }
    waiting = ", ".join(f"{n} {kind}" for kind, n in awards.items() if n)
    if waiting:
        parts.append(f"awards {waiting}")
    if s.quarantined:
        parts.append(f"{len(s.quarantined)} records quarantined (first: {s.quarantined[0].reason})")
    return "; ".join(parts)


def _at(t: float | None) -> str:
    if t is None:
        return "never"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
