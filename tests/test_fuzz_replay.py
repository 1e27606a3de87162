"""Replay, in plain pytest, the counterexamples that ``credsync fuzz --database`` saved.

``CREDSYNC_DATABASE=DIR|redis://HOST:PORT/DB pytest tests/test_fuzz_replay.py`` runs, for
every fuzz target (each engine, hunting everything or one symptom), what the database holds
for it and nothing else: no generation, so a failure here is a failure some fuzz worker,
on this machine or another, found and saved. Hypothesis prints its steps and the broken
invariant, as it does for any stateful test. A target with nothing saved is skipped by
Hypothesis ("told to run no examples"); one whose saved examples all pass now passes, and
Hypothesis drops those examples from the database, as it always does: that is how a fixed
bug leaves a shared database. Without ``CREDSYNC_DATABASE`` there is nothing to replay, so
these skip (``tests/test_fuzz_scale.py`` runs them on databases it fills).
"""

from __future__ import annotations

import os

import pytest

from scenarios.fuzzing import Target, open_database, replay
from scenarios.scenario import ENGINES
from scenarios.symptoms import PREDICATES

DATABASE = os.environ.get("CREDSYNC_DATABASE")
TARGETS = [Target(engine, symptom) for engine in sorted(ENGINES) for symptom in (None, *PREDICATES)]

pytestmark = pytest.mark.skipif(
    DATABASE is None, reason="set CREDSYNC_DATABASE=DIR|redis://HOST:PORT/DB to replay it"
)


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_saved_counterexamples_of(target: Target) -> None:
    assert DATABASE is not None
    replay(target, open_database(DATABASE))
