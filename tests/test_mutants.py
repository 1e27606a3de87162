"""The state machine has teeth: deliberately broken engines are caught, by the right name.

Each mutant breaks one design rule of the core. Hypothesis must find a run that violates
the invariant guarding that rule, within the ``ci`` example budget and without shrinking
(shrinking belongs to the legacy-engine detection tests, which also bound its length).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from simulators.machine import SyncMachine
from sync_core import (
    Command,
    Event,
    Failure,
    IssueAssertion,
    Policy,
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
            again = replace(pending.command, request_id=self._take_id())
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


def machine_for(engine: type[SyncEngine]) -> type[SyncMachine]:
    def restore(text: str, policy: Policy) -> SyncEngine:
        restored = engine(policy)
        base = SyncEngine.from_json(text, policy)
        restored.__dict__.update(base.__dict__)
        return restored

    return type(
        f"{engine.__name__}Machine",
        (SyncMachine,),
        {"new_engine": engine, "restore_engine": restore},
    )


@pytest.mark.parametrize(
    ("mutant", "invariant"),
    [
        (RetriesBlindly, "no-duplicate-awards"),
        (NeverRemovesMembers, "members-match-enrollments"),
        (PublishesTheLeaderboardOnce, "leaderboard-matches-awards"),
    ],
)
def test_the_machine_catches_a_broken_engine(mutant: type[SyncEngine], invariant: str) -> None:
    budget = settings(
        settings(), stateful_step_count=40, phases=[Phase.generate], report_multiple_bugs=False
    )
    with pytest.raises(AssertionError, match=invariant):
        run_state_machine_as_test(machine_for(mutant), settings=budget)
