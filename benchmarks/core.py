"""Figures 1 to 3: what a round of the core costs, measured on the engine alone.

A course is built with the simulators, its group filled as a first sync would leave it
(:func:`seed_credentials`), and the pages of a full round and of an incremental round after
one grade change are recorded through the memory transport (:func:`record`). The figures
then replay those pages into a restored engine as ``PageReceived`` events, so they time the
engine, never the fake that served them.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

from benchmarks.measure import Case, Goal, Result, measure
from simulators.faults import FaultPlan, FaultRates, SeededChoices
from simulators.transport import MemoryTransport
from simulators.world import World
from simulators.worlds import CourseSpec, build
from sync_core import (
    AssignmentScore,
    AwardRule,
    CourseGrade,
    CourseLinked,
    Event,
    Policy,
    SyncEngine,
    Tick,
    UpdateNowRequested,
)
from sync_core.commands import (
    CanvasList,
    Command,
    FetchCanvasPage,
    FetchCredentialsPage,
)
from sync_core.events import Failure, PageReceived, RequestFailed, WriteAcknowledged

POLICY = Policy(full_resync_interval=30 * 86_400)
"""Full rounds only when asked for: waiting out Canvas's rate limit while recording a large
course moves the virtual clock by many minutes, which must not turn the incremental round
measured into a periodic full resync."""
RULES = 20


@dataclass(frozen=True)
class Recorded:
    """One course's pages as its rounds read them, and the engine state before each round.

    Pages are keyed by their command with the request id zeroed: a replayed round asks for
    the same lists and cursors under new request ids."""

    students: int
    submissions: int
    full_state: str
    full_at: float
    full_pages: dict[Command, PageReceived]
    incremental_state: str
    incremental_at: float
    incremental_pages: dict[Command, PageReceived]


def _key(command: Command) -> Command:
    return replace(command, request_id=0)


def _read_key(command: FetchCanvasPage | FetchCredentialsPage) -> tuple[object, ...]:
    """What names a page, without its request id: ``_key`` without building a command, as
    the replay looks one up per page inside the timed round."""
    if isinstance(command, FetchCanvasPage):
        return (command.resource, command.params, command.cursor)
    return (command.resource, command.badge_class, command.params, command.cursor)


def drive(engine: SyncEngine, answer: Callable[[Command], Event], event: Event) -> None:
    """Feed ``event`` and answer every command it leads to, until the engine is quiet."""
    queue = deque(engine.handle(event))
    while queue:
        queue.extend(engine.handle(answer(queue.popleft())))


def rules_for(course_id: int, assignments: list[int]) -> tuple[AwardRule, ...]:
    """A course grade rule and one score rule per assignment, up to :data:`RULES` in all."""
    scores = [
        AssignmentScore(f"c{course_id}-a{a}", a, min_percent=80.0) for a in assignments[: RULES - 1]
    ]
    return (CourseGrade(f"c{course_id}-grade", 70.0), *scores)


def seed_credentials(world: World, course_id: int) -> None:
    """Put into the fake Credentials, through its own Python API, what a first sync of the
    linked course writes: an assertion per earned award, a member per active student with
    an email (with the badges earned), and the leaderboard derived from them.

    Syncing them through the engine and the fakes' HTTP layer is most of a recording's time
    for no measurement; :func:`record` checks that the engine's full round over this world
    then writes nothing, so the seeded group is exactly the one a sync would have left."""
    link = world.links[course_id]
    credentials, users = world.credentials, world.canvas.users
    earning = world.earning_students(course_id)
    earned = sorted(world.earned_now(course_id))
    held: dict[int, list[str]] = {}
    for uid, badge in earned:
        email = earning.get(uid)
        if email is not None:
            credentials.award(badge, email)
            held.setdefault(uid, []).append(badge)
    active = world.active_students(course_id)
    for uid, email in sorted(active.items()):
        if email is not None:  # an active student's earned badges are all held (sorted)
            credentials.upsert_member(link.group_id, uid, email, users[uid].name, held.get(uid, []))
    ranking = [(uid, len(held.get(uid, ()))) for uid, email in active.items() if email]
    credentials.publish_leaderboard(link.group_id, ranking)


def record(students: int, assignments: int, seed: int = 1, verify: bool = False) -> Recorded:
    """Build a synced course, then record a full round's pages and an incremental round's.

    The full round is the engine's first over a group already synced (:func:`seed_credentials`)
    and must write nothing; its pages are then what a later full resync of the unchanged
    world reads, so they are replayed into the state it left. ``verify`` also runs that
    resync through the fakes and checks it reads the very same pages."""
    spec = CourseSpec(students=students, assignments=assignments, modules=0, graded=1.0)
    world, _ = build((spec,), seed)
    # No faults are drawn, so no read is served from Canvas's lagging replica: switch off
    # its refresh, which copies the whole course at the first write after each lag.
    world.canvas.replica_lag = float("inf")
    clock = world.clock
    # A day after the term's grading, so the incremental round's overlap re-reads none of it.
    clock.advance(86_400)
    (course_id,) = world.canvas.courses
    work = [a.id for a in world.canvas.assignments_in(course_id)]
    linked: CourseLinked = world.link_course(
        course_id, rules_for(course_id, work), create_badge_classes=True
    )
    # A steady course has grades trickling in: this one sets the watermark, and the round
    # measured follows a second one.
    student = min(s.user_id for s in world.canvas.submissions.values())
    world.canvas.grade(course_id, work[0], student, 10.0)
    seed_credentials(world, course_id)
    transport = MemoryTransport(world, FaultPlan(FaultRates.none(), SeededChoices(seed)))
    pages: dict[Command, PageReceived] = {}
    writes: list[Command] = []

    def answer(command: Command) -> Event:
        event = transport.execute(command)
        while isinstance(event, RequestFailed) and event.failure is Failure.THROTTLED:
            # Canvas's own rate limit bites a reader this fast: wait it out, as an adapter
            # would, rather than let the round abort.
            clock.advance(event.retry_after or 1.0)
            event = transport.execute(command)
        if isinstance(command, FetchCanvasPage | FetchCredentialsPage):
            assert isinstance(event, PageReceived), f"{command} failed: {event}"
            pages[_key(command)] = event
        else:
            writes.append(command)
        return event

    engine = SyncEngine(POLICY)
    engine.handle(linked)
    drive(engine, answer, Tick(clock.now))
    assert not writes, f"the seeded group is not what a sync leaves: {writes[:3]}"
    assert pages, "the full round was never recorded"
    full_pages = dict(pages)
    full_state, full_at = engine.to_json(), clock.now
    if verify:
        pages.clear()
        drive(engine, answer, UpdateNowRequested(course_id))
        same = {k: replace(p, request_id=0) for k, p in pages.items()} == {
            k: replace(p, request_id=0) for k, p in full_pages.items()
        }
        assert not writes and same, "a resync read other pages"
    world.canvas.grade(course_id, work[1], student, 10.0)
    clock.advance(POLICY.poll_interval)
    incremental_state, incremental_at = engine.to_json(), clock.now
    pages.clear()
    drive(engine, answer, Tick(clock.now))
    incremental = [c for c in pages if isinstance(c, FetchCanvasPage) and c.cursor is None]
    assert any("graded_since" in dict(c.params) for c in incremental), "not incremental"
    return Recorded(
        students,
        len(world.canvas.submissions),
        full_state,
        full_at,
        full_pages,
        incremental_state,
        incremental_at,
        dict(pages),
    )


def replay(
    state: str, at: float, pages: dict[Command, PageReceived], full: bool
) -> Callable[[], object]:
    """A restored engine, and the thunk that runs its next round from ``pages``."""
    engine = SyncEngine.from_json(state, POLICY)
    if full:
        (course_id,) = (status.course_id for status in engine.status())
        engine.handle(UpdateNowRequested(course_id))  # before the clock starts: just noted

    served = {
        _read_key(command): page
        for command, page in pages.items()
        if isinstance(command, FetchCanvasPage | FetchCredentialsPage)
    }

    def answer(command: Command) -> Event:
        if isinstance(command, FetchCanvasPage | FetchCredentialsPage):
            page = served[_read_key(command)]
            return PageReceived(command.request_id, page.records, page.next_cursor)
        return WriteAcknowledged(command.request_id)

    def run() -> None:
        drive(engine, answer, Tick(at))
        (status,) = engine.status()
        assert status.last_success_at == at, f"the replayed round did not finish: {status}"

    return run


def full_round(rec: Recorded) -> Case:
    return lambda: replay(rec.full_state, rec.full_at, rec.full_pages, full=True)


def incremental_round(rec: Recorded) -> Case:
    return lambda: replay(
        rec.incremental_state, rec.incremental_at, rec.incremental_pages, full=False
    )


def scores_floor(rec: Recorded) -> Case:
    """One plain pass over the same submission pages, building a dict of scores: the least
    any reconcile could do with them."""
    records: list[Any] = [
        page.records
        for command, page in rec.full_pages.items()
        if isinstance(command, FetchCanvasPage) and command.resource is CanvasList.SUBMISSIONS
    ]

    def run() -> None:
        scores = {}
        for page in records:
            for r in page:
                scores[(r["user_id"], r["assignment_id"])] = r.get("score")
        assert len(scores) == rec.submissions

    return lambda: run


def figures(quick: bool) -> list[Result]:
    repeats, sizes, assignments = (3, (20, 200), 20) if quick else (7, (100, 1000, 10_000), 50)
    middle = sizes[-1] if quick else sizes[1]
    recorded = {n: record(n, assignments) for n in sizes}
    # The recordings (every page of every size, half a million records at the largest) are
    # fixtures, not the engine's heap: frozen, the collector no longer walks them during the
    # rounds timed, which would charge a round for the size of the *other* recordings. What
    # a round allocates, its restored state included, is still collected as usual.
    gc.collect()
    gc.freeze()
    try:
        return _measured(recorded, repeats, sizes, assignments, middle)
    finally:
        gc.unfreeze()


def _measured(
    recorded: dict[int, Recorded],
    repeats: int,
    sizes: tuple[int, ...],
    assignments: int,
    middle: int,
) -> list[Result]:
    rec = recorded[middle]
    floor = measure(full_round(rec), scores_floor(rec), repeats)
    results = [
        Result(
            "1",
            f"full reconcile, {middle} students x {assignments} assignments x {RULES} rules,"
            " vs a dict pass",
            floor.ratio,
            Goal("<=", 4),
            {
                "submissions": rec.submissions,
                "reconcile_s": floor.subject,
                "floor_s": floor.baseline,
                "repeats": repeats,
            },
        )
    ]
    growth: dict[str, object] = {}
    worst = 0.0
    for small, large in pairwise(sizes):
        # A round of the largest course takes seconds, and restoring its state as much
        # again: fewer repeats for that step than for the others.
        step = measure(
            full_round(recorded[large]), full_round(recorded[small]), 3 if large > 1000 else repeats
        )
        growth[f"{small}->{large}"] = {
            "ratio": step.ratio,
            "small_s": step.baseline,
            "large_s": step.subject,
            "repeats": step.repeats,
        }
        worst = max(worst, step.ratio)
    results.append(
        Result(
            "2",
            f"growth: full reconcile at 10x the students ({' -> '.join(map(str, sizes))})",
            worst,
            Goal("<=", 12),
            growth,
        )
    )
    step = measure(incremental_round(rec), full_round(rec), repeats)
    results.append(
        Result(
            "3",
            f"incremental round after one grade change, vs full ({middle} students)",
            100 * step.ratio,
            Goal("<=", 2, "%"),
            {"incremental_s": step.subject, "full_s": step.baseline, "repeats": repeats},
        )
    )
    return results
