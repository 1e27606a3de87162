"""Fault injection: which faults exist, how often, and who draws the dice.

Every choice comes from an injected :class:`ChoiceSource`. With :class:`HypothesisChoices`
the faults are part of Hypothesis's choice sequence, so a failing run shrinks its faults
along with its steps; kinds with a zero rate draw nothing at all, so they shrink away
completely. Rates are "swarm" drawn per run (as in TigerBeetle's VOPR) so that some runs
hammer one fault while others barely see it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Protocol

from hypothesis import strategies as st

SWARM_RATES = (0, 5, 50, 200, 500)
"""Per-mille rates a swarm run may pick per kind: off, rare, common, heavy, half."""


class FaultKind(Enum):
    TRANSIENT_5XX = "transient_5xx"
    THROTTLE = "throttle"
    TIMEOUT_BEFORE_COMMIT = "timeout_before_commit"
    CONNECTION_RESET = "connection_reset"
    LOST_RESPONSE = "lost_response"
    STALE_READ = "stale_read"
    PAGE_DRIFT = "page_drift"
    TOKEN_EXPIRY = "token_expiry"
    SLOW_RESPONSE = "slow_response"
    WORKER_CRASH = "worker_crash"


_CANVAS_READ_ONLY = frozenset({FaultKind.STALE_READ, FaultKind.PAGE_DRIFT})


TARGETS = ("canvas-read", "credentials-read", "award", "member", "leaderboard")
"""What a request does, as fault targets name it: the same whichever transport carries it."""


class ChoiceSource(Protocol):
    def draw(self, n: int) -> int:
        """A uniform choice in ``[0, n)``."""
        ...


class SeededChoices:
    """Choices from a private ``random.Random``: reproducible per seed, shared with nobody."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def draw(self, n: int) -> int:
        return self._rng.randrange(n)


class HypothesisChoices:
    """Choices drawn from a Hypothesis ``data`` object, so they shrink with the test."""

    def __init__(self, data: st.DataObject) -> None:
        self._data = data

    def draw(self, n: int) -> int:
        return self._data.draw(st.integers(0, n - 1))


class ScriptedChoices:
    """Replays the draws a recorded run made (see ``simulators.machine.RecordingChoices``),
    so a counterexample found by Hypothesis runs again with exactly its faults."""

    def __init__(self, draws: list[int]) -> None:
        self._draws = list(draws)
        self._next = 0

    def draw(self, n: int) -> int:
        if self._next >= len(self._draws):
            raise ScriptExhausted(
                f"the recorded fault draws ran out after {len(self._draws)}: the run went "
                "differently from the recording (was its timeline edited? then remove 'draws')"
            )
        value = self._draws[self._next]
        self._next += 1
        if not 0 <= value < n:
            raise ScriptExhausted(
                f"recorded draw {self._next} is {value}, outside [0, {n}): the run went "
                "differently from the recording"
            )
        return value


class ScriptExhausted(RuntimeError):
    """A scripted run asked for a draw its recording does not have."""


@dataclass(frozen=True)
class FaultRates:
    """Probability of each fault per request (per crash check for WORKER_CRASH), in
    per-mille from 0 to 1000. Field names are the kinds' values."""

    transient_5xx: int = 0
    throttle: int = 0
    timeout_before_commit: int = 0
    connection_reset: int = 0
    lost_response: int = 0
    stale_read: int = 0
    page_drift: int = 0
    token_expiry: int = 0
    slow_response: int = 0
    worker_crash: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0 <= value <= 1000:
                raise ValueError(f"{f.name} rate {value} is outside 0..1000 per mille")

    def rate(self, kind: FaultKind) -> int:
        rate: int = getattr(self, kind.value)
        return rate

    def with_rate(self, kind: FaultKind, per_mille: int) -> FaultRates:
        return replace(self, **{kind.value: per_mille})

    @classmethod
    def none(cls) -> FaultRates:
        return cls()

    @classmethod
    def swarm(cls, source: ChoiceSource) -> FaultRates:
        """One rate per kind, each drawn from :data:`SWARM_RATES`."""
        return cls(**{k.value: SWARM_RATES[source.draw(len(SWARM_RATES))] for k in FaultKind})


class FaultPlan:
    """Decides the fault (if any) for each request; :meth:`heal` stops all faults so a
    run can check that the system converges once the world behaves."""

    def __init__(self, rates: FaultRates, source: ChoiceSource, enabled: bool = True) -> None:
        self.rates = rates
        self.source = source
        self.enabled = enabled
        # Request targets (see TARGETS) the faults hit; None means every request. Scenarios
        # use it to fault, say, only award POSTs.
        self.only: frozenset[str] | None = None

    def heal(self) -> None:
        self.enabled = False

    def decide(
        self, is_write: bool, is_canvas_read: bool, target: str | None = None
    ) -> FaultKind | None:
        """At most one fault for this request, from a single draw.

        The draw's range starts with "no fault" and then gives each applicable kind a
        slice as wide as its rate, so the chance of a kind is its rate while the rates add
        up to at most 1000 per mille; above that they are scaled down so that one request
        in ten still gets through. Low values mean no fault, so Hypothesis, which
        shrinks draws towards zero, shrinks a failure towards fewer faults. Kinds that
        are off or do not apply take no slice; when none is left, nothing is drawn.
        """
        if not self.enabled or (self.only is not None and target not in self.only):
            return None
        kinds = [
            (kind, self.rates.rate(kind))
            for kind in FaultKind
            if kind is not FaultKind.WORKER_CRASH
            and self.rates.rate(kind) > 0
            and not (kind in _CANVAS_READ_ONLY and (is_write or not is_canvas_read))
        ]
        total = sum(rate for _, rate in kinds)
        if total == 0:
            return None
        scale = 1000 if total <= 1000 else total * 10 // 9
        if scale == total and len(kinds) == 1:
            return kinds[0][0]  # certain: nothing to draw
        value = self.source.draw(scale) - (scale - total)
        for kind, rate in kinds:
            if value < 0:
                return None
            if value < rate:
                return kind
            value -= rate
        return None

    def decide_crash(self) -> bool:
        """Asked by the harness between steps; crashes are not tied to a request."""
        return self.enabled and self._hit(FaultKind.WORKER_CRASH)

    def _hit(self, kind: FaultKind) -> bool:
        rate = self.rates.rate(kind)
        if rate == 0:
            return False
        return rate == 1000 or self.source.draw(1000) < rate
