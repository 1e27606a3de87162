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
from functools import cache
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
    REPLICA_LAG = "replica_lag"
    LATE_COMMIT = "late_commit"
    HAND_EDIT = "hand_edit"


REQUEST_CLASSES = ("canvas-read", "credentials-read", "write")
"""How the fault layer tells requests apart: which kinds can happen to a request depends on
its class (a Canvas replica serves only Canvas reads, only a write can commit late)."""

_ONLY_ON: dict[FaultKind, frozenset[str]] = {
    FaultKind.STALE_READ: frozenset({"canvas-read"}),
    FaultKind.PAGE_DRIFT: frozenset({"canvas-read"}),
    FaultKind.REPLICA_LAG: frozenset({"credentials-read"}),
    FaultKind.LATE_COMMIT: frozenset({"write"}),
    # A person at the Credentials UI acts while the sync talks to Credentials: before one
    # of its requests is served, so between any two of a round's reads and writes.
    FaultKind.HAND_EDIT: frozenset({"credentials-read", "write"}),
}

REPLICA_LAGS = (5.0, 30.0, 120.0, 1800.0)
"""How far back a lagging Credentials read sees, in seconds, one drawn per read (the first
is what shrinking reaches). All but the last are within :data:`REPLICA_LAG_BOUND`; the last
is drawn only when the plan goes :attr:`FaultPlan.beyond_bounds`."""
REPLICA_LAG_BOUND = 120.0
COMMIT_DELAYS = (2.0, 30.0, 60.0, 120.0, 240.0, 3600.0)
"""How long after the client gave up a late write is stored, one drawn per write: spread
over the settle window a sync needs, so a sync that settles too early meets one. All but
the last are within :data:`COMMIT_DELAY_BOUND` (the last: as :data:`REPLICA_LAGS`)."""
COMMIT_DELAY_BOUND = 240.0


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
    """Choices drawn from a Hypothesis ``data`` object, so they shrink with the test.

    A run makes hundreds of fault decisions: :meth:`draw_in` takes each as one small
    choice straight from the example's choice sequence (``data.conjecture_data``,
    semi-public in the pinned Hypothesis), without the strategy, span and printed note of
    ``data.draw`` (a tenth of the cost). :meth:`draw` keeps ``data.draw``: the swarm rates
    are drawn with it, and :func:`simulators.strategies.fault_rates` must draw the same."""

    def __init__(self, data: st.DataObject) -> None:
        self._data = data
        self._draw_integer = data.conjecture_data.draw_integer

    def draw(self, n: int) -> int:
        return self._data.draw(st.integers(0, n - 1))

    def draw_in(self, n: int, slots: tuple[range, ...]) -> int:
        """A value in ``[0, n)`` when only which of ``slots`` it falls in matters (see
        :meth:`FaultPlan.decide`): one small choice among the slots, weighted by their
        widths, the quiet slot first. Hypothesis shrinks a fault away by setting that
        choice to zero, in one attempt, where a choice among a thousand values would cost a
        search per fault and leave its shrinker hundreds of meaningless "smaller" values
        to spend its budget of successful shrinks on. Returns the start of the slot."""
        return slots[self._draw_integer(0, len(slots) - 1, weights=_weights(n, slots))].start


@cache
def _weights(n: int, slots: tuple[range, ...]) -> dict[int, float]:
    """Each slot's share of ``n``, scaled just below a total of 1 as Hypothesis requires."""
    return {i: len(slot) / n * (1 - 2**-20) for i, slot in enumerate(slots)}


class ScriptedChoices:
    """Replays the draws a recorded run made (see ``simulators.harness.machine.RecordingChoices``),
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
    replica_lag: int = 0
    late_commit: int = 0
    hand_edit: int = 0

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
        """One rate per kind: off in half the draws (swarm testing omits each feature with
        probability one half, so that a run hammers a few kinds rather than all at once,
        where the first kinds of a request would mask the later ones), else a level of
        :data:`SWARM_RATES` other than off. Shrinks towards no faults."""
        levels = len(SWARM_RATES) - 1
        return cls(
            **{
                k.value: SWARM_RATES[max(0, source.draw(2 * levels) - levels + 1)]
                for k in FaultKind
            }
        )


class FaultPlan:
    """Decides the fault (if any) for each request; :meth:`heal` stops all faults so a
    run can check that the system converges once the world behaves."""

    def __init__(self, rates: FaultRates, source: ChoiceSource, enabled: bool = True) -> None:
        self._slices: dict[str, _Slices | None] = {}
        self.rates = rates
        self.source = source
        self.enabled = enabled
        # Request targets (see TARGETS) the faults hit; None means every request. Scenarios
        # use it to fault, say, only award POSTs.
        self.only: frozenset[str] | None = None
        # Whether a lag or commit delay may go past the bounds the sync states (the last of
        # REPLICA_LAGS and COMMIT_DELAYS). Off by default: within the bounds every duplicate
        # counts; an example that turns it on is judged on what the sync promises beyond.
        self.beyond_bounds = False

    @property
    def rates(self) -> FaultRates:
        return self._rates

    @rates.setter
    def rates(self, rates: FaultRates) -> None:
        """New rates: the per-request slices (see :meth:`decide`) are worked out again."""
        self._rates = rates
        self._slices = {
            request_class: _Slices.of(
                [
                    (kind, rates.rate(kind))
                    for kind in FaultKind
                    if kind is not FaultKind.WORKER_CRASH
                    and rates.rate(kind) > 0
                    and request_class in _ONLY_ON.get(kind, REQUEST_CLASSES)
                ]
            )
            for request_class in REQUEST_CLASSES
        }

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
        request_class = (
            "write" if is_write else "canvas-read" if is_canvas_read else "credentials-read"
        )
        slices = self._slices[request_class]
        if slices is None:
            return None
        if slices.certain is not None:
            return slices.certain  # nothing to draw
        value = self._draw(slices.scale, slices.slots) - slices.quiet
        for kind, rate in slices.kinds:
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
        return rate == 1000 or self._draw(1000, (range(rate, 1000), range(rate))) < rate

    def _draw(self, n: int, slots: tuple[range, ...]) -> int:
        """A uniform choice in ``[0, n)`` of which only the slot matters: a source that
        can draw the slot itself (:meth:`HypothesisChoices.draw_in`) does, the others
        draw the value, so seeded and scripted runs decide exactly as they always did."""
        draw_in = getattr(self.source, "draw_in", None)
        if draw_in is None:
            return self.source.draw(n)
        value: int = draw_in(n, slots)
        return value


@dataclass(frozen=True)
class _Slices:
    """How one kind of request draws its fault (see :meth:`FaultPlan.decide`)."""

    kinds: tuple[tuple[FaultKind, int], ...]  # applicable kinds and their rates, in order
    scale: int  # the draw's range: 1000, or more when the rates add up to more
    quiet: int  # the width of the "no fault" slot at the start of the range
    slots: tuple[range, ...]  # the non-empty slots, the quiet one first
    certain: FaultKind | None  # the one kind every request gets, when nothing is left to draw

    @classmethod
    def of(cls, kinds: list[tuple[FaultKind, int]]) -> _Slices | None:
        total = sum(rate for _, rate in kinds)
        if total == 0:
            return None
        scale = 1000 if total <= 1000 else total * 10 // 9
        quiet = scale - total
        slots, start = [range(quiet)] if quiet else [], quiet
        for _, rate in kinds:
            slots.append(range(start, start + rate))
            start += rate
        certain = kinds[0][0] if quiet == 0 and len(kinds) == 1 else None
        return cls(tuple(kinds), scale, quiet, tuple(slots), certain)
