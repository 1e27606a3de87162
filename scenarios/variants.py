"""Engine variants that keep one flaw each: the core as it was before a fix, kept so that
the generated search is shown to find the flaw on its own (``tests/test_detection.py``) and
so that QA can watch a named scenario break (``credsync scenario run NAME --engine
VARIANT``).

Each variant is the core with one design rule taken out, through the one method that
carries the rule; the docstrings name the rule and the invariant that catches its absence.
"""

from __future__ import annotations

from typing import Any

from sync_core import Command, IssueAssertion, SyncEngine
from sync_core.engine import RoundAborted
from sync_core.state import AwardStatus


class TrustsOneRead(SyncEngine):
    """An award whose outcome is unknown counts as absent on the very next read, however
    soon: a lagging replica, or a write that lands late, then makes it award twice
    (``no-duplicate-awards``). The core waits ``Policy.award_settle_window`` first."""

    def _settled(self, entry: Any) -> bool:
        return True

    def _doubt(self, rnd: Any, entry: Any) -> None:
        rnd.doubtful = True  # back after backoff_base to settle it, as the core once did


class ChecksEarly(SyncEngine):
    """Check-then-act: decides from the assertions a full round read at its start and
    issues much later, with Credentials' own duplicate check left off (as Badgr's default
    is). A teacher's award between the read and the write is awarded again
    (``no-duplicate-awards``). The core reads the student's awards just before each award,
    and asks Credentials to refuse a duplicate."""

    def _check(self, course: Any, rnd: Any, key: str, entry: Any, out: list[Command]) -> None:
        if entry.badge_class in rnd.read_badges and self._settled(entry):
            self._issue(course, rnd, key, entry, out)  # what the round's first read showed
        else:
            super()._check(course, rnd, key, entry, out)

    def _issue(self, course: Any, rnd: Any, key: str, entry: Any, out: list[Command]) -> None:
        email = rnd.students[entry.user_id].email
        entry.status, entry.attempted_at = AwardStatus.IN_FLIGHT, self.now
        award = IssueAssertion(
            self._take_id(), course.course_id, entry.badge_class, entry.user_id, email, True
        )
        self._track(course, rnd, "award", key, award, out)


class AbortsOnMissingClass(SyncEngine):
    """A badge class that answers 404 (archived, deleted, misnamed in the links) aborts
    the whole course's round, every round: members, other badges and the leaderboard stop
    with it (``course-freshness``, ``members-match-enrollments``). The core holds only
    that class's awards."""

    def _class_missing(self, course: Any, rnd: Any, badge: str) -> None:
        raise RoundAborted(f"badge class {badge}: HTTP 404 not found")


class AwardsSharedClassTwice(SyncEngine):
    """Two linked courses awarding one badge class do not wait for each other: while one
    course's award may still land, the other checks, finds nothing and awards too
    (``no-duplicate-awards``). The core serialises a shared class's awards across courses."""

    def _elsewhere(self, course: Any, key: str) -> Any:
        return None


class RestartsAfterThrottle(SyncEngine):
    """Aborts the whole round on a throttle and starts the next from the first page, as the
    core did before throttled requests waited within their round: a course whose round
    costs more than Canvas's bucket holds then never completes one
    (``progress-under-load``). The core parks a throttled request and sends it again
    within its round once ``Retry-After`` has passed."""

    def _throttled(self, course: Any, rnd: Any, pending: Any, retry_after: float | None) -> None:
        if pending.kind == "award":  # refused: nothing of it can land
            course.outbox[pending.key].status = AwardStatus.PENDING
            course.outbox[pending.key].attempted_at = None
        raise RoundAborted(f"{pending.key}: throttled", retry_after)


VARIANTS: dict[str, type[SyncEngine]] = {
    "trusts-one-read": TrustsOneRead,
    "checks-early": ChecksEarly,
    "aborts-on-missing-class": AbortsOnMissingClass,
    "awards-shared-class-twice": AwardsSharedClassTwice,
    "restarts-after-throttle": RestartsAfterThrottle,
}
"""Every variant by the name ``credsync`` and scenario files use."""
