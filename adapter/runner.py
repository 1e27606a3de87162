"""Drive a :class:`~sync_core.SyncEngine` with an adapter: the production sync loop.

The loop is the engine's contract made concrete: feed ``Tick`` from the clock, perform each
returned command in order and feed its one answer back, and save ``to_json()`` to the
:class:`~adapter.store.Store` after every ``handle`` (one transaction per step), before
performing what it returned, so a crash at any point restarts from a state the engine knows
how to resume (in-flight awards come back as uncertain). Commands run
one at a time, first in first out, which keeps a run's order deterministic and identical to
the simulation harness's.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from adapter.store import Store
from adapter.tokens import Clock
from sync_core.commands import Command
from sync_core.engine import CourseStatus, SyncEngine
from sync_core.events import CourseLinked, Event, Tick
from sync_core.schedule import Policy

MIN_WAIT = 1.0
"""The shortest wait between two ticks, so a course that is due but cannot start (a round
still open) never turns the loop into a busy spin; the engine's round timeout ends it."""


class Executor(Protocol):
    """What the loop needs of an adapter (:class:`adapter.http.HttpAdapter`, or a fake)."""

    async def execute(self, command: Command) -> Event: ...


@dataclass(frozen=True)
class RoundEnded:
    """One course finished a round: completed (``ok``), or failed and is backing off until
    ``next_due`` because of ``error``."""

    course_id: int
    ok: bool
    at: float
    error: str | None
    next_due: float


Sleep = Callable[[float], Awaitable[None]]
OnRound = Callable[[RoundEnded], None]


def load_engine(store: Store | None, policy: Policy | None = None) -> SyncEngine:
    """The engine saved in ``store``, or a new one when nothing was saved yet. A damaged
    state raises :class:`sync_core.StateError` rather than silently starting over, which
    would forget which awards are uncertain."""
    text = None if store is None else store.load()
    return SyncEngine(policy) if text is None else SyncEngine.from_json(text, policy)


def apply_links(engine: SyncEngine, links: Iterable[CourseLinked]) -> None:
    """Link courses before the first ``Tick``, when the engine cannot start a round and so
    returns no command that would be lost. Relinking a known course makes its next round a
    full resync, which is what the engine does on any relink."""
    for link in links:
        if engine.handle(link):
            raise RuntimeError("apply_links must run before the engine's first Tick")


async def run_sync(
    adapter: Executor,
    engine: SyncEngine,
    *,
    once: bool,
    clock: Clock = time.time,
    store: Store | None = None,
    on_round: OnRound | None = None,
    sleep: Sleep = asyncio.sleep,
) -> list[RoundEnded]:
    """Run the sync. With ``once``, return when every linked course has ended one round
    (completed it, or failed it and is backing off), with each course's last outcome;
    otherwise run until cancelled, sleeping until the next course is due. ``sleep`` is
    injectable so that a test can advance a virtual clock instead of waiting."""
    driver = _Driver(adapter, engine, store, on_round)
    while True:
        await driver.feed(Tick(clock()))
        linked = {s.course_id for s in engine.status()}
        if once and linked <= driver.ended.keys():
            return [driver.ended[cid] for cid in sorted(linked)]
        now = clock()
        due = min((s.next_due for s in engine.status()), default=now + engine.policy.poll_interval)
        await sleep(max(due - now, MIN_WAIT))


class _Driver:
    """Feeds one event and everything it leads to, saving state and noting ended rounds."""

    def __init__(
        self,
        adapter: Executor,
        engine: SyncEngine,
        store: Store | None,
        on_round: OnRound | None,
    ) -> None:
        self.adapter = adapter
        self.engine = engine
        self.store = store
        self.on_round = on_round
        self.ended: dict[int, RoundEnded] = {}
        self._marks = _progress(engine.status())

    async def feed(self, event: Event) -> None:
        queue: deque[Command] = deque(self._handle(event))
        while queue:
            answer = await self.adapter.execute(queue.popleft())
            queue.extend(self._handle(answer))

    def _handle(self, event: Event) -> list[Command]:
        commands = self.engine.handle(event)
        if self.store is not None:
            self.store.save(self.engine.to_json())
        self._note_rounds()
        return commands

    def _note_rounds(self) -> None:
        """A round ended when a course's last success or its failure count moved."""
        statuses = self.engine.status()
        before, self._marks = self._marks, _progress(statuses)
        for status in statuses:
            if self._marks[status.course_id] == before.get(status.course_id, (None, 0)):
                continue
            ok = status.failures == 0
            error = None if ok else status.last_error
            ended = RoundEnded(status.course_id, ok, self.engine.now, error, status.next_due)
            self.ended[status.course_id] = ended
            if self.on_round is not None:
                self.on_round(ended)


def _progress(statuses: Iterable[CourseStatus]) -> dict[int, tuple[float | None, int]]:
    return {s.course_id: (s.last_success_at, s.failures) for s in statuses}
