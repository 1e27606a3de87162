"""Fuzzing at scale: many processes, one Hypothesis example database.

``credsync fuzz --workers N --database DIR|redis://HOST:PORT/DB`` runs the state machine in
N processes that share Hypothesis's example database: a directory
(:class:`~hypothesis.database.DirectoryBasedExampleDatabase`) for one machine, or Redis
(Hypothesis's own :class:`~hypothesis.extra.redis.RedisExampleDatabase`) for many. Hypothesis
saves every counterexample it shrinks there, and replays what is saved before it generates
anything new, so a failure found by one worker is replayed by the others, by later runs,
and by a plain ``pytest`` anywhere that reads the same database
(``tests/test_fuzz_replay.py``, through :func:`replay`).

That replay needs the fuzzer and the test to ask the database for the same key. Hypothesis
keys a state machine's examples by a digest of its own inner test function (fixed by the
pinned Hypothesis version) and of the machine factory: the factory's source and signature,
plus its ``_hypothesis_internal_add_digest``, the hook Hypothesis's pytest plugin uses to
tell parametrized cases apart. Every factory here is the one small function in
:meth:`Target.factory`, whose source names neither engine nor symptom, and the hook is set to
the target's name: the key is a function of the target alone, the same in every process and
on every machine, and one target's replay never runs (and so never deletes) another's
counterexamples. It does not change when the machine's rules do: a saved example is then
replayed against the new rules, and dropped by Hypothesis if it no longer fails.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing.sharedctypes import SynchronizedArray
from pathlib import Path
from typing import ClassVar, Literal, Protocol

from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase
from hypothesis.stateful import run_state_machine_as_test

from scenarios.scenario import ENGINES, ScenarioError
from scenarios.symptoms import INVARIANTS, PREDICATES
from simulators.harness.invariants import Violation
from simulators.harness.machine import SyncMachine

BATCH = 25
"""Examples per seeded batch: a worker looks at the clock, and at whether another worker
has found a failure, between batches."""
HUNT = (Phase.reuse, Phase.generate, Phase.target, Phase.shrink)
"""A hunt replays what the database holds for its target first, as Hypothesis always does."""
REPLAY = (Phase.explicit, Phase.reuse)
"""A replay runs only what the database holds: no generation, so it cannot find anything new."""
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Hunt(SyncMachine):
    """The machine a target runs: it counts its examples, and when it hunts one symptom,
    only the violations that mean that symptom fail a run."""

    examples: ClassVar[int] = 0
    symptom: ClassVar[int | None] = None

    def teardown(self) -> None:
        type(self).examples += 1
        super().teardown()

    def relevant(self, violation: Violation) -> bool:
        return self.symptom is None or PREDICATES[self.symptom](self.world, violation)


@dataclass(frozen=True)
class Target:
    """What a fuzz run hunts: one engine, and optionally one known symptom (then only the
    violations that mean that symptom fail a run, see :mod:`scenarios.symptoms`)."""

    engine: str
    symptom: int | None = None

    @property
    def name(self) -> str:
        return self.engine if self.symptom is None else f"{self.engine}-symptom{self.symptom}"

    def machine(self) -> type[Hunt]:
        """A fresh machine class for this target, so that its example count starts at 0."""
        new_engine, restore_engine = ENGINES[self.engine]

        class Machine(Hunt):
            pass

        Machine.symptom = self.symptom
        Machine.judged = None if self.symptom is None else INVARIANTS[self.symptom]
        Machine.new_engine = new_engine
        Machine.restore_engine = restore_engine
        Machine.__name__ = f"{self.engine.capitalize()}Machine"
        return Machine

    def factory(self, machine: type[Hunt]) -> Callable[[], SyncMachine]:
        """What ``run_state_machine_as_test`` runs: its database key depends on this
        target's name only (see the module docstring)."""

        def build() -> SyncMachine:
            return machine()

        build._hypothesis_internal_add_digest = f"credsync fuzz {self.name}".encode()  # type: ignore[attr-defined]
        return build


def open_database(spec: str) -> ExampleDatabase:
    """A directory, or a Redis URL; a bad one is refused before any worker starts."""
    if spec.startswith(REDIS_SCHEMES):
        try:
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError as exc:
            raise ScenarioError(
                f"--database {spec}: needs the redis package (pip install 'hypothesis[redis]')"
            ) from exc
        try:
            client = redis.Redis.from_url(spec)
            client.ping()
        except (ValueError, redis.RedisError) as exc:
            raise ScenarioError(f"--database {spec}: cannot use this Redis: {exc}") from exc
        return RedisExampleDatabase(client)
    if "://" in spec:
        raise ScenarioError(
            f"--database {spec}: give a directory or a redis://HOST:PORT/DB URL "
            f"(schemes: {', '.join(REDIS_SCHEMES)})"
        )
    if Path(spec).exists() and not Path(spec).is_dir():
        raise ScenarioError(f"--database {spec}: exists and is not a directory")
    return DirectoryBasedExampleDatabase(spec)


def run_settings(database: ExampleDatabase | None, phases: Sequence[Phase]) -> settings:
    """One batch's settings. The fuzzer and the replay must agree on the step count: a
    saved choice sequence replays the same steps only under the same one."""
    return settings(
        max_examples=BATCH,
        stateful_step_count=40,
        deadline=None,
        database=database,
        derandomize=False,
        report_multiple_bugs=False,
        phases=phases,
        suppress_health_check=list(HealthCheck),
    )


def replay(target: Target, database: ExampleDatabase) -> None:
    """Run the counterexamples the database holds for ``target`` and nothing else: raises
    the failure, with Hypothesis's report of the steps, when one still fails."""
    run_state_machine_as_test(
        target.factory(target.machine()), settings=run_settings(database, REPLAY)
    )


@dataclass(frozen=True)
class Plan:
    """One ``credsync fuzz`` run, as every worker needs it (it is pickled to each)."""

    target: Target
    seed: int
    workers: int
    deadline: float
    """When to stop starting batches, on ``time.monotonic()``: the workers are processes on
    one machine, and that clock is the system's."""
    database: str | None

    def batch_seed(self, batch: int) -> int:
        return self.seed * 100_003 + batch


@dataclass(frozen=True)
class Outcome:
    """How one worker ended, with the failure it found (the shrunk run, which Hypothesis
    replays last, is its machine's ``last_run``)."""

    worker: int
    pid: int
    examples: int
    ended: Literal["found", "stopped", "budget"]
    failure: str | None = None
    recording: dict[str, object] | None = None


class Stop(Protocol):
    def is_set(self) -> bool: ...

    def set(self) -> None: ...


def hunt(plan: Plan, worker: int, stop: Stop, progress: Callable[[int], None]) -> Outcome:
    """Run seeded batches until the budget is spent, another worker found a failure, or this
    one does. Worker ``w`` of ``N`` runs batches ``w``, ``w + N``, ``w + 2N``... of the one
    seeded stream: together the workers run the batches that one would, in parallel, and
    one worker runs exactly what ``credsync fuzz`` without ``--workers`` runs."""
    machine = plan.target.machine()
    build = plan.target.factory(machine)
    database = None if plan.database is None else open_database(plan.database)
    budget = run_settings(database, HUNT)
    ended: Literal["stopped", "budget"] = "budget"
    for batch in itertools.count(worker, plan.workers):
        if stop.is_set():
            ended = "stopped"
            break
        if time.monotonic() >= plan.deadline:
            break
        try:
            run_state_machine_as_test(
                hypothesis_seed(plan.batch_seed(batch))(build), settings=budget
            )
        except AssertionError as exc:
            stop.set()
            return Outcome(
                worker, os.getpid(), machine.examples, "found", str(exc), machine.last_run
            )
        finally:
            progress(machine.examples)
    return Outcome(worker, os.getpid(), machine.examples, ended)


def fuzz(plan: Plan, progress: Callable[[int], None]) -> list[Outcome]:
    """Every worker's outcome, in the order they ended (the first ``found`` is the first
    failure). One worker runs in this process; more run in spawned processes, sharing an
    event that the first to find a failure sets, and their example counts for ``progress``."""
    if plan.workers == 1:
        return [hunt(plan, 0, threading.Event(), progress)]
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    counts = context.Array("q", plan.workers)
    outcomes: list[Outcome] = []
    with ProcessPoolExecutor(
        plan.workers, mp_context=context, initializer=_share, initargs=(stop, counts)
    ) as pool:
        pending: set[Future[Outcome]] = {
            pool.submit(_hunt_here, plan, worker) for worker in range(plan.workers)
        }
        try:
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                progress(sum(counts[:]))
                outcomes.extend(future.result() for future in done)
        finally:
            stop.set()  # an error or Ctrl-C here stops the workers at their next batch
    return outcomes


_shared: tuple[Stop, SynchronizedArray[int]] | None = None
"""In a worker process: the stop event and the example counts (a pool initializer's
arguments are the only way to hand a process these)."""


def _share(stop: Stop, counts: SynchronizedArray[int]) -> None:
    global _shared
    _shared = (stop, counts)


def _hunt_here(plan: Plan, worker: int) -> Outcome:
    assert _shared is not None
    stop, counts = _shared

    def progress(examples: int) -> None:
        counts[worker] = examples

    return hunt(plan, worker, stop, progress)
