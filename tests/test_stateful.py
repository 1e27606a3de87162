"""The sync core against the simulated world, fuzzed by Hypothesis.

In the ``ci`` profile this runs at least 200 examples of 40 steps: each example draws its
own fault rates (none to very high), and ends with the liveness phase.
"""

from __future__ import annotations

from hypothesis import settings

from simulators.harness.machine import SyncMachine

TestCoreSync = SyncMachine.TestCase
TestCoreSync.settings = settings(settings(), stateful_step_count=40)
