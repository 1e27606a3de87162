"""One simulated deployment: an engine, the world, the memory transport and the fault plan.

The harness plays the production adapter's part: it executes each command against the world
through the transport and feeds the answer back. A worker crash throws away everything not
persisted (queued commands, rounds in flight) and restores the engine from its saved state,
exactly as a process restart would. A production adapter saves ``to_json()`` after every
``handle``; here a crash always falls between two ``handle`` calls, so serialising at the
moment of the crash yields the very same saved state, without paying for it at every step.

:meth:`Simulation.settle` is the liveness phase, after TigerBeetle's VOPR: faults stop, and
the engine must converge within bounded virtual time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from simulators.faults import REPLICA_LAG_BOUND, FaultPlan
from simulators.harness.invariants import (
    QUIESCENCE,
    SAFETY,
    AssertionView,
    CourseView,
    Violation,
    WorldView,
    check,
    course_freshness,
    progress_under_load,
    update_now_repairs,
)
from simulators.services import LATENCY, LogEntry, request_cost
from simulators.transport import MemoryTransport
from simulators.world import World
from sync_core import (
    Command,
    CourseLinked,
    Event,
    IssueAssertion,
    Policy,
    SyncEngine,
    Tick,
    UpdateNowRequested,
)
from sync_core.engine import CourseStatus, Phase


class Engine(Protocol):
    """What the harness needs of an engine: the core, or the legacy model of the original."""

    def handle(self, event: Event) -> list[Command]: ...

    def to_json(self) -> str: ...

    def status(self) -> tuple[CourseStatus, ...]: ...


class Transport(Protocol):
    """What the harness needs of a transport: :class:`MemoryTransport`, or one of the HTTP
    transports in :mod:`simulators.http.transport` that carry the same requests over HTTP."""

    def execute(self, command: Command) -> Event: ...

    @property
    def log(self) -> list[LogEntry]: ...


TransportFactory = Callable[[World, FaultPlan], Transport]


@dataclass(frozen=True)
class TraceEntry:
    """One line of the run's history, for replay checks and human-readable reports."""

    at: float
    kind: str  # "link" | "activity" | "fault" | "command" | "crash" | "update-now" | "heal"
    course_id: int | None
    detail: str


class Simulation:
    def __init__(
        self,
        world: World,
        plan: FaultPlan,
        *,
        policy: Policy | None = None,
        new_engine: Callable[[Policy], Engine] = SyncEngine,
        restore_engine: Callable[[str, Policy], Engine] = SyncEngine.from_json,
        max_tick: float = 3600.0,
        transport_factory: TransportFactory = MemoryTransport,
    ) -> None:
        self.world = world
        self.plan = plan
        self.policy = policy or Policy()
        self.transport = transport_factory(world, plan)
        self.engine = new_engine(self.policy)
        self._restore = restore_engine
        self.max_tick = max_tick
        self.trace: list[TraceEntry] = []
        self.crashes = 0
        self.judged: list[tuple[float, str, Violation]] = []
        # When each course was first linked, and when its first round (always a full one)
        # completed: how long a large course takes to sync at all, under the throttle.
        self.linked_at: dict[int, float] = {}
        self.first_synced: dict[int, float] = {}
        self._feed(Tick(self.now))  # an adapter starts by telling the engine the time

    @property
    def now(self) -> float:
        return self.world.clock.now

    # -- driving -------------------------------------------------------------------------

    def link(self, event: CourseLinked) -> None:
        self._log("link", event.course_id, f"group {event.group_id}, {len(event.rules)} rules")
        self.linked_at.setdefault(event.course_id, self.now)
        self._feed(event)

    def update_now(self, course_id: int) -> None:
        self._log("update-now", course_id, "teacher pressed update now")
        self._feed(UpdateNowRequested(course_id))

    def advance(self, seconds: float) -> None:
        """Move virtual time forward, waking the engine whenever a course falls due (and at
        least every ``max_tick`` seconds, so stuck rounds meet their timeout)."""
        end = self.now + seconds
        while self.now < end:
            statuses = self.engine.status()
            for s in statuses:  # rounds are a poll apart: no first one completes unseen
                if s.last_success_at is not None:
                    self.first_synced.setdefault(s.course_id, s.last_success_at)
            due = min((s.next_due for s in statuses), default=end)
            wake = min(end, self.now + self.max_tick, max(due, self.now + 1.0))
            self.world.clock.advance(wake - self.now)
            self._feed(Tick(self.now))

    def crash(self) -> None:
        """The worker dies between steps and restarts from its saved state."""
        self._restart()
        self._feed(Tick(self.now), may_crash=False)

    def _restart(self) -> None:
        """Whatever was not persisted is gone (queued commands, rounds in flight); the
        engine comes back from its serialised state."""
        self.crashes += 1
        self._log("crash", None, "worker crashed; restored from the last saved state")
        self.engine = self._restore(self.engine.to_json(), self.policy)

    def _feed(self, event: Event, may_crash: bool = True) -> None:
        """Feed one event and run every command it leads to. The fault plan may crash the
        worker once per feed, between two commands; the restarted worker then carries on
        from its saved state, as a supervisor would restart it."""
        self.world.note_truth()  # whatever the engine reads from here on was once true
        told = self.now
        queue: deque[Command] = deque(self.engine.handle(event))
        while queue:
            if may_crash and self.plan.decide_crash():
                may_crash = False
                self._in_flight(queue)
                self._restart()
                queue = deque(self.engine.handle(Tick(self.now)))
                continue
            command = queue.popleft()
            served, edited = len(self.transport.log), len(self.world.hand_edits)
            answer = self.transport.execute(command)
            for _at, label, fault, _status in self.transport.log[served:]:
                if fault is not None:
                    self._log("fault", command.course_id, f"{fault.value} on {label}")
            for edit in self.world.hand_edits[edited:]:
                self._log("activity", command.course_id, f"in Credentials, by hand: {edit}")
            self._log("command", command.course_id, _describe(command, answer))
            if self.now > told:  # slow answers took time: an adapter's clock says so first
                told = self.now
                queue.extend(self.engine.handle(Tick(self.now)))
            queue.extend(self.engine.handle(answer))

    def _in_flight(self, lost: deque[Command]) -> None:
        """Awards the dying worker had decided to send: as far as anyone can tell, they may
        have been on the wire (the engine's saved state says so), so they are in doubt."""
        for command in lost:
            if isinstance(command, IssueAssertion):
                doubt = (self.now, command.badge_class, command.email.lower())
                self.world.award_doubts.append(doubt)

    def note(self, course_id: int | None, detail: str) -> None:
        """Record something that happened in the world (Canvas activity, a fault setting)."""
        self._log("activity", course_id, detail)

    def _log(self, kind: str, course_id: int | None, detail: str) -> None:
        self.trace.append(TraceEntry(self.now, kind, course_id, detail))

    # -- judging -------------------------------------------------------------------------

    def view(self) -> WorldView:
        """Judge the world now (noting the ground truth first, as every feed does)."""
        self.world.note_truth()
        synced = {s.course_id: s.last_success_at for s in self.engine.status()}
        return observe(self.world, synced, self.policy.award_settle_window)

    def settle(self, judge: Collection[str] | None = None) -> list[Violation]:
        """Stop all faults, then hold the engine to its liveness promises.

        Writes still on their way land, and are judged as any write is; then one "update
        now" on the first linked course must repair it by the end of the round it starts (at
        once, unless the throttle makes that round wait); then, with no further help, every
        course must complete a sync within the policy's freshness bound, and two polls later
        (after hand edits: two polls after the full round that repairs them) the whole world
        must have converged.

        ``judge`` names the invariants to judge (all when None): a fuzzer hunting one
        symptom judges only the invariants that can show it, and skips the last poll when
        no quiescence invariant is among them (nothing after it would be judged). The
        "update now" is pressed either way: it is part of what the engine goes through.
        """
        self.plan.heal()
        self.world.credentials.commit_all()  # writes still on their way land as it heals
        healed_at = self.now
        self._log("heal", None, "faults off: liveness phase")
        # What landed late is judged as any write is: a duplicate stored by a late commit
        # is the sync's doing as much as one stored at once.
        safety = {k: v for k, v in SAFETY.items() if judge is None or k in judge}
        violations = self._judged("safety", check(self.view(), safety))
        linked = sorted(self.world.links)
        if linked:
            self.update_now(linked[0])
            self._round_runs_out(linked[0], load_bound(self.world, self.policy))
            if judge is None or "update-now-repairs" in judge:
                repairs = update_now_repairs(self.view(), linked[0])
                violations += self._judged("liveness", repairs)
        policy = self.policy
        deadlines = {
            "course-freshness": (policy.freshness_bound(), course_freshness),
            "progress-under-load": (load_bound(self.world, policy), progress_under_load),
        }
        quiescence = {
            name: invariant
            for name, invariant in QUIESCENCE.items()
            if judge is None or name in judge
        }
        if judge is not None and not quiescence and not judge & deadlines.keys():
            return violations
        start = self.now
        for name, (bound, invariant) in sorted(deadlines.items(), key=lambda d: d[1][0]):
            self.advance(start + bound - self.now)
            if judge is None or name in judge:
                found = invariant(self.view(), since=healed_at, bound=bound)
                violations += self._judged("liveness", found)
        if quiescence:
            if self.world.edited_by_hand:
                # What a teacher changed by hand is put right by the next full round (README,
                # "Hand edits"), which a policy may run less often than the freshness bound.
                full_round_done = healed_at + self.policy.full_resync_interval
                self.advance(max(0.0, full_round_done + self.policy.round_timeout - self.now))
            self.advance(2 * self.policy.poll_interval)
            violations += self._judged("quiescence", check(self.view(), quiescence))
        return violations

    def _round_runs_out(self, course_id: int, limit: float) -> None:
        """Let the course's round in progress run to its end, for at most ``limit`` seconds.
        Over the memory transport a round completes within the step that starts it, unless
        Canvas's throttle made it wait: then the clock moves a second at a time until the
        throttled requests have been sent again and answered."""
        end = self.now + limit
        while self.now < end and any(
            s.course_id == course_id and s.phase is not Phase.IDLE for s in self.engine.status()
        ):
            self.advance(1.0)

    def _judged(self, phase: str, violations: list[Violation]) -> list[Violation]:
        """Keep when and in which phase each violation was found, for reports."""
        self.judged += [(self.now, phase, v) for v in violations]
        return violations


def _describe(command: Command, answer: Event) -> str:
    outcome = type(answer).__name__
    failure = getattr(answer, "failure", None)
    if failure is not None:
        outcome += f"({failure.value})"
    name = type(command).__name__
    target = getattr(command, "resource", None)
    what = f"{name} {target.value}" if target is not None else name
    return f"{what} -> {outcome}"


def load_bound(world: World, policy: Policy) -> float:
    """How long after the faults stop every linked course must have completed a round,
    stated from the load (the ``progress-under-load`` invariant): a wait the engine may
    already have scheduled (``backoff_cap``), a poll, and the time one full round of every
    linked course needs. They share one token, so one bucket: its Canvas requests cost what
    the fake charges (:func:`request_cost`, per page of at most 100 rows), and the bucket
    admits that at ``outflow`` per second. Every request also takes up to the longest
    latency of a full page; a Canvas request may be turned away twice before it is admitted
    (once in the burst a round starts with, once more when Retry-After, in whole seconds,
    rounds the wait down), each refusal one more round trip. Sizes come from the world's
    ground truth, each an upper bound of what a sync must read or write: every enrollment
    and user row, a submission row per student and assignment, one module-progress read per
    student of a course with modules, a member per student, and an award per earned badge
    with the read of that student's awards of the class made just before it.
    """
    canvas = world.canvas
    reads = writes = 0
    cost = 0.0
    for course_id, link in world.links.items():
        enrollments = len(canvas.enrollments_in(course_id))
        students = len(world.earning_students(course_id))
        work = len(canvas.assignments_in(course_id))
        lists = (enrollments, enrollments, work, students * work, work)  # quizzes <= work
        for rows in lists:
            full, rest = divmod(rows, 100)
            reads += full + 1
            cost += full * request_cost(100) + request_cost(rest)
        if canvas.modules_in(course_id):
            reads += students
            cost += students * request_cost(len(canvas.modules_in(course_id)))
        pages = students // 100 + 1
        awards = len(world.earned_now(course_id))
        writes += pages * (2 + len(link.rules)) + students + 2 * awards
    trip = LATENCY.longest(100)
    limit = canvas.rate_limit
    seconds = cost / limit.outflow + 3 * reads * trip + (writes + 1) * trip
    return policy.backoff_cap + policy.poll_interval + seconds


def observe(
    world: World, last_synced: dict[int, float | None], settle_window: float = 0.0
) -> WorldView:
    """What an auditor with read access to both services sees, plus the sync times."""
    courses = []
    for course_id, link in sorted(world.links.items()):
        group = world.credentials.groups[link.group_id]
        ever = frozenset((u, b) for c, u, b in world.ever_earned if c == course_id)
        courses.append(
            CourseView(
                course_id=course_id,
                badge_classes=frozenset(rule.badge_class for rule in link.rules),
                active_students=world.active_students(course_id),
                earning_students=world.earning_students(course_id),
                earned_now=frozenset(world.earned_now(course_id)),
                ever_earned=ever,
                members={uid: m.email for uid, m in group.members.items()},
                leaderboard=tuple((r.canvas_user_id, r.badges) for r in group.leaderboard),
                last_synced=last_synced.get(course_id),
            )
        )
    credentials = world.credentials
    assertions = tuple(
        AssertionView(
            a.badge_class,
            a.identity.lower(),
            a.revoked,
            a.by_hand,
            a.requested_at,
            a.created_at,
            a.revoked_at,
            a.seq,
            a.requested_serial,
        )
        for a in credentials.assertions.values()
        if a.recipient_type == "email"
    )
    owners = {email: uid for uid in sorted(world.canvas.users) for email in world.emails_ever(uid)}
    unavailable = frozenset(
        rule.badge_class
        for link in world.links.values()
        for rule in link.rules
        if not credentials.available(rule.badge_class)
    )
    return WorldView(
        world.clock.now,
        tuple(courses),
        assertions,
        owners,
        unavailable,
        REPLICA_LAG_BOUND,
        world.beyond_tolerance,
        frozenset(
            (badge, email)
            for at, badge, email in world.award_doubts
            if at > world.clock.now - settle_window
        ),
    )
