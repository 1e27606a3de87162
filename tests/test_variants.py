"""The generated machine finds each flaw of "Canvas as it really behaves" on its own.

Each engine variant in :mod:`mutants` keeps one flaw the core used to have (issue 14). For
each, the state machine runs against the variant from generated cases, failing only on the
invariant that guards that flaw (and judging only that one, as a symptom hunt does), and
Hypothesis must find a violation within the ``ci`` example budget and shrink it to at most
:data:`test_detection.MAX_STEPS` actions, as :mod:`test_detection` requires of the legacy
engine's symptoms. The same machine against the core finds nothing: that is
``tests/test_stateful.py``, which judges every invariant in the same budget.
"""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test
from mutants import RestartsAfterThrottle
from test_detection import MAX_STEPS, budget, rule_steps
from test_mutants import machine_for

from simulators.harness.invariants import Violation
from simulators.harness.machine import SyncMachine
from sync_core import SyncEngine

VARIANTS: dict[str, tuple[type[SyncEngine], str]] = {
    "restarts-after-throttle": (RestartsAfterThrottle, "progress-under-load"),
}


def hunting(engine: type[SyncEngine], invariant: str) -> type[SyncMachine]:
    base = machine_for(engine)

    def relevant(self: SyncMachine, violation: Violation) -> bool:
        return violation.invariant == invariant

    return type(
        f"{engine.__name__}Hunt", (base,), {"relevant": relevant, "judged": frozenset({invariant})}
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_generated_search_finds_the_variant(variant: str) -> None:
    engine, invariant = VARIANTS[variant]
    machine = hunting(engine, invariant)
    with pytest.raises(AssertionError) as caught:
        run_state_machine_as_test(machine, settings=budget())
    found = caught.value
    judged = str(found).splitlines()
    assert judged and all(line.startswith(f"{invariant} broken in course ") for line in judged)
    reproduction = [str(note) for note in getattr(found, "__notes__", [])]
    assert machine.last_run is not None
    actions = machine.last_run["timeline"]
    assert isinstance(actions, list)
    assert len(actions) <= len(rule_steps(machine, reproduction))
    assert len(actions) <= MAX_STEPS, f"{variant}: {len(actions)} actions: {actions}"
