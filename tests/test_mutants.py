"""The state machine has teeth: deliberately broken engines are caught, by the right name.

Each mutant breaks one design rule of the core. Hypothesis must find a run that violates
the invariant guarding that rule, within the ``ci`` example budget and without shrinking
(shrinking belongs to the legacy-engine detection tests, which also bound its length).
"""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from mutants import NeverRemovesMembers, PublishesTheLeaderboardOnce, RetriesBlindly

from simulators.harness.machine import SyncMachine
from sync_core import Policy, SyncEngine


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
