"""Both simulated services behind the fault plan: one entry point per API request.

Every transport goes through :meth:`Services.serve`: the in-memory transport calls it
directly, the ASGI apps call it for each HTTP request. The fault for a request is decided
here, in request order, from the plan's one choice source, so a seed injects the same faults
on the same requests whichever transport carries them. Faults are applied where they happen
in reality: before the server (timeouts, throttles, 5xx), inside it (stale replica, drifting
pages, slow handling, an expired token) or after it (a committed write whose response is
lost).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from simulators.api import ApiRequest
from simulators.canvas.api import CanvasApi
from simulators.canvas.model import RateLimit
from simulators.credentials import hand
from simulators.credentials.api import CredentialsApi
from simulators.faults import (
    COMMIT_DELAY_BOUND,
    COMMIT_DELAYS,
    REPLICA_LAG_BOUND,
    REPLICA_LAGS,
    FaultKind,
    FaultPlan,
)
from simulators.tokens import Service
from simulators.world import World
from sync_core.wire import HttpResponse

LogEntry = tuple[float, str, FaultKind | None, int | None]
"""(virtual time, what was asked, injected fault, HTTP status the server sent or None)."""

CANVAS_THROTTLE_TEXT = "403 Forbidden (Rate Limit Exceeded)\n"
TEXT_TYPE = {"Content-Type": "text/plain; charset=utf-8"}


@dataclass
class LeakyBucket:
    """Canvas's request throttle (fact sheet section 3), one per token, on virtual time.

    Each request first needs room for an up-front reservation (refunded when it ends, so
    it only bites parallel or very fast callers), then adds its own cost; the bucket drains
    at ``outflow`` per second. Past the high-water mark Canvas throttles."""

    high_water: float = 600.0
    outflow: float = 10.0
    up_front: float = 50.0
    level: float = 0.0
    at: float = 0.0

    @classmethod
    def of(cls, limit: RateLimit) -> LeakyBucket:
        return cls(limit.high_water, limit.outflow, limit.up_front)

    def admit(self, now: float) -> bool:
        self.level = max(0.0, self.level - (now - self.at) * self.outflow)
        self.at = now
        return self.level + self.up_front <= self.high_water

    def seconds_to_room(self) -> float:
        return max(1.0, (self.level + self.up_front - self.high_water) / self.outflow)

    def charge(self, cost: float) -> float:
        """Add a request's cost; return what is left below the high-water mark."""
        self.level += cost
        return self.high_water - self.level


@dataclass(frozen=True)
class Latency:
    """How long a request takes, in virtual seconds: uniform in ``[low, high)`` plus a little
    per row returned (rendering a hundred rows costs more than one).

    Time per request is what makes Canvas's bucket drain as it does in wall time: a client
    that sends one request after another drains ``outflow`` x latency cost units per
    request, and these figures (30-90 ms, about a hosted Canvas answering a simple API
    call) are short enough that a client reading a large course back to back meets the
    throttle, as production adapters do. Drawn from the world's seed, not from the fault
    plan: latency is not a fault, and a draw per request from Hypothesis would cost more
    than the request."""

    low: float = 0.03
    high: float = 0.09
    per_row: float = 0.0005

    def draw(self, rng: random.Random, rows: int) -> float:
        return self.low + (self.high - self.low) * rng.random() + self.per_row * rows

    def longest(self, rows: int) -> float:
        """The most a request returning ``rows`` rows can take (invariants bound by it)."""
        return self.high + self.per_row * rows


LATENCY = Latency()


def request_cost(rows: int) -> float:
    """What a Canvas request charges its bucket: what a query costs grows with what it
    returns (the real cost is its CPU and database time)."""
    return 1.0 + 0.01 * rows


@dataclass(frozen=True)
class Dropped:
    """No response reached the client: the connection timed out or was reset. Whether the
    request took effect is what the fault says (timeout before commit, or lost response)."""

    kind: Literal["timeout", "reset"]


class Services:
    def __init__(self, world: World, plan: FaultPlan, canvas_throttle_status: int = 429) -> None:
        if canvas_throttle_status not in (403, 429):
            raise ValueError("Canvas throttles with 403 (before Oct 2025) or 429")
        self.world = world
        self.plan = plan
        self.canvas_throttle_status = canvas_throttle_status
        self.buckets: dict[str, LeakyBucket] = {}
        self.log: list[LogEntry] = []
        self._latency = random.Random(world.seed)

    def serve(
        self, service: Service, request: ApiRequest, label: str | None = None
    ) -> HttpResponse | Dropped:
        """Answer one API request (never a token grant: those are not faulted), with
        whatever fault the plan decides for it. ``label`` names it in the log."""
        outcome = self._serve(service, request, label)
        if service is Service.CREDENTIALS and request.method.upper() == "POST":
            self._note_doubt(request, outcome)
        return outcome

    def _serve(
        self, service: Service, request: ApiRequest, label: str | None
    ) -> HttpResponse | Dropped:
        self.world.credentials.commit_due()  # whatever was accepted earlier and is due now
        is_write = request.method.upper() != "GET"
        target = _target(service, request)
        fault = self.plan.decide(is_write, service is Service.CANVAS and not is_write, target)
        if fault is FaultKind.TOKEN_EXPIRY:
            token = request.bearer()
            if token is not None:
                self.world.tokens.expire(token)
        elif fault is FaultKind.HAND_EDIT:
            self.world.hand_edits.append(hand.random_edit(self.world, self.plan.source))
        outcome: HttpResponse | Dropped
        if fault is FaultKind.TIMEOUT_BEFORE_COMMIT:
            outcome = Dropped("timeout")
        elif fault is FaultKind.CONNECTION_RESET:
            outcome = Dropped("reset")  # refused before the server saw it
        elif fault is FaultKind.LATE_COMMIT:
            # The client times out while the server is still at work; the write is
            # checked now and stored later, maybe after the worker restarted and read again.
            delay = self._drawn(COMMIT_DELAYS, COMMIT_DELAY_BOUND)
            with self.world.credentials.late(delay):
                self._handle(service, request, fault)
            outcome = Dropped("timeout")
        else:
            if fault is FaultKind.SLOW_RESPONSE:
                self.world.clock.advance(5 + self.plan.source.draw(56))
            outcome = self._handle(service, request, fault)
            if fault is FaultKind.LOST_RESPONSE:
                self._record(label or request.method, fault, outcome.status)
                self._take_time(outcome)
                return Dropped("timeout")
        status = outcome.status if isinstance(outcome, HttpResponse) else None
        self._record(label or request.method, fault, status)
        self._take_time(outcome)
        return outcome

    def _take_time(self, outcome: HttpResponse | Dropped) -> None:
        """The request's round trip, on the virtual clock (see :class:`Latency`)."""
        body = outcome.body if isinstance(outcome, HttpResponse) else None
        rows = len(body) if isinstance(body, list) else 1
        self.world.clock.advance(LATENCY.draw(self._latency, rows))

    def _note_doubt(self, request: ApiRequest, outcome: HttpResponse | Dropped) -> None:
        """Ground truth for the liveness phase: an award request the client got no
        definite answer to (no response, or a 5xx), by badge class and recipient."""
        if isinstance(outcome, HttpResponse) and outcome.status < 500:
            return
        body = request.json
        recipient = body.get("recipient") if isinstance(body, dict) else None
        identity = recipient.get("identity") if isinstance(recipient, dict) else None
        segments = request.segments
        if isinstance(identity, str) and len(segments) == 4 and segments[3] == "assertions":
            self.world.award_doubts.append((self.world.clock.now, segments[2], identity.lower()))

    def _drawn(self, values: tuple[float, ...], bound: float) -> float:
        """One of ``values`` (the first when shrunk); a value past ``bound`` is noted in the
        world, whose invariants then hold the sync to what it promises beyond its bounds."""
        within = values if self.plan.beyond_bounds else values[:-1]
        value = within[self.plan.source.draw(len(within))]
        if value > bound:
            self.world.beyond_tolerance = True
        return value

    def _handle(
        self, service: Service, request: ApiRequest, fault: FaultKind | None
    ) -> HttpResponse:
        if fault is FaultKind.TRANSIENT_5XX:
            return HttpResponse(503, TEXT_TYPE, "503 Service Unavailable")
        if fault is FaultKind.THROTTLE:
            return self._throttled(service, None)
        if service is Service.CREDENTIALS:
            credentials = self.world.credentials
            if fault is FaultKind.REPLICA_LAG:  # served from a cache of an earlier moment
                lag = self._drawn(REPLICA_LAGS, REPLICA_LAG_BOUND)
                credentials = credentials.as_of(self.world.clock.now - lag)
            return CredentialsApi(credentials, self.world.tokens).handle(request)
        token = request.bearer() or ""
        bucket = self.buckets.get(token)
        if bucket is None:
            bucket = self.buckets[token] = LeakyBucket.of(self.world.canvas.rate_limit)
        if not bucket.admit(self.world.clock.now):
            return self._throttled(service, bucket.seconds_to_room())
        canvas = self.world.canvas
        if fault is FaultKind.STALE_READ:
            canvas = canvas.replica()
        shift = 0
        if fault is FaultKind.PAGE_DRIFT:
            shift = (-1, 1)[self.plan.source.draw(2)]
        response = CanvasApi(canvas, self.world.tokens).handle(request, page_shift=shift)
        cost = request_cost(len(response.body) if isinstance(response.body, list) else 1)
        remaining = bucket.charge(cost)
        rated = {"X-Request-Cost": f"{cost:.2f}", "X-Rate-Limit-Remaining": f"{remaining:.1f}"}
        # Bodies are built afresh per request (see api.json_response): no copy needed.
        return HttpResponse(response.status, {**response.headers, **rated}, response.body)

    def _throttled(self, service: Service, wait: float | None) -> HttpResponse:
        """The throttle answer, in Canvas's configured era's form (403 with a plain-text
        body before Oct 2025, 429 since): no X-Request-Cost, and nothing remaining. A full
        bucket says how long it needs; an injected throttle draws its wait."""
        seconds = 1 + self.plan.source.draw(30) if wait is None else round(wait)
        headers = {**TEXT_TYPE, "Retry-After": str(seconds), "X-Rate-Limit-Remaining": "0.0"}
        if service is Service.CANVAS and self.canvas_throttle_status == 403:
            return HttpResponse(403, headers, CANVAS_THROTTLE_TEXT)
        return HttpResponse(429, headers, "429 Too Many Requests (Rate Limit Exceeded)\n")

    def _record(self, label: str, fault: FaultKind | None, status: int | None) -> None:
        self.log.append((self.world.clock.now, label, fault, status))


def _target(service: Service, request: ApiRequest) -> str:
    """The request's :data:`~simulators.faults.TARGETS` name, from its method and path."""
    if request.method.upper() == "GET":
        return "canvas-read" if service is Service.CANVAS else "credentials-read"
    if request.path.endswith("/leaderboard"):
        return "leaderboard"
    return "member" if "/members/" in request.path else "award"
