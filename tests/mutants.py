"""Engines broken on purpose, each violating one design rule of the core.

Tests use them to show that the state machine and the command line catch a broken engine.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sync_core import (
    Command,
    Event,
    Failure,
    IssueAssertion,
    RemoveMember,
    RequestFailed,
    SyncEngine,
)


class RetriesBlindly(SyncEngine):
    """Re-issues an award at once after an ambiguous failure, without looking first."""

    def _respond(
        self, course: Any, rnd: Any, pending: Any, event: Event, out: list[Command]
    ) -> None:
        if (
            isinstance(event, RequestFailed)
            and event.failure is Failure.AMBIGUOUS
            and isinstance(pending.command, IssueAssertion)
        ):
            # Blindly, and as the original sync did, with Badgr's default of duplicates
            # allowed (the core's ``allowDuplicateAwards: false`` would refuse the copy).
            again = replace(pending.command, request_id=self._take_id(), allow_duplicates=True)
            self._track(course, rnd, "award", pending.key, again, out)
            return
        super()._respond(course, rnd, pending, event, out)


class NeverRemovesMembers(SyncEngine):
    """Adds members but never removes one, as a sync that only reacts to enrolments would."""

    def _track(
        self,
        course: Any,
        rnd: Any,
        kind: str,
        key: str,
        command: Command,
        out: list[Command],
        attempt: int = 1,
    ) -> None:
        if not isinstance(command, RemoveMember):
            super()._track(course, rnd, kind, key, command, out, attempt)


class PublishesTheLeaderboardOnce(SyncEngine):
    """Publishes the leaderboard the first time only, as an incrementally kept one stalls."""

    def _publish(self, course: Any, rnd: Any, out: list[Command]) -> None:
        if not rnd.leaderboard:
            super()._publish(course, rnd, out)
