"""Figures 4 and 5: how much fuzzing an hour buys.

Figure 4 compares the credsync machine's stateful steps per second with an empty
``RuleBasedStateMachine`` under the same settings, which is what Hypothesis itself costs
per step. Figure 5 times ``credsync fuzz --symptom N`` (the CLI's own hunt, shrinking
included) against a plain random walk over the same rules, drawn with ``random.Random``.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from benchmarks.measure import Goal, Result, measure
from scenarios.legacy import LegacyEngine
from scenarios.symptoms import PREDICATES
from simulators.invariants import SAFETY, Violation, check
from simulators.machine import SyncMachine

FUZZ_STEPS = 40
"""Steps per run in ``credsync fuzz``; the random walk's runs are as long."""


# -- figure 4 -----------------------------------------------------------------------------


class CountedSyncMachine(SyncMachine):
    """The core under the machine, counting its steps (the invariant runs once per step)."""

    steps: ClassVar[int] = 0

    @invariant()
    def count(self) -> None:
        type(self).steps += 1


class EmptyMachine(RuleBasedStateMachine):
    """What a step costs when the rule does nothing: Hypothesis's share of every step."""

    steps: ClassVar[int] = 0

    @rule()
    def nothing(self) -> None:
        pass

    @invariant()
    def count(self) -> None:
        type(self).steps += 1


def _throughput_case(
    machine: type[CountedSyncMachine] | type[EmptyMachine], examples: int, out: list[float]
) -> Callable[[], Callable[[], object]]:
    budget = settings(
        max_examples=examples,
        stateful_step_count=20,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )

    def run() -> None:
        machine.steps = 0
        run_state_machine_as_test(machine, settings=budget)  # type: ignore[no-untyped-call]
        out.append(machine.steps)

    return lambda: run


def harness_overhead(quick: bool) -> Result:
    examples, repeats = (10, 3) if quick else (40, 5)
    sync_steps: list[float] = []
    empty_steps: list[float] = []
    cmp = measure(
        _throughput_case(CountedSyncMachine, examples, sync_steps),
        _throughput_case(EmptyMachine, examples, empty_steps),
        repeats,
    )
    sync_rate = statistics.median(sync_steps) / cmp.subject
    empty_rate = statistics.median(empty_steps) / cmp.baseline
    return Result(
        "4",
        "harness: credsync machine steps/s vs an empty RuleBasedStateMachine",
        sync_rate / empty_rate,
        Goal(">=", 0.25),
        {
            "credsync_steps_per_s": sync_rate,
            "empty_steps_per_s": empty_rate,
            "examples": examples,
            "repeats": repeats,
        },
    )


# -- figure 5 -----------------------------------------------------------------------------


def hunt(symptom: int, seed: int, minutes: float) -> tuple[float, int | None]:
    """``credsync fuzz --engine legacy --symptom N``, as a user runs it (in its own process,
    so the interpreter's start, about a second, is included): seconds to a shrunk
    counterexample, written and confirmed, and its length in actions (None: not found)."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["fuzz", "--engine", "legacy", "--symptom", str(symptom), "--seed", str(seed)]
        argv += ["--minutes", str(minutes), "--out", str(Path(tmp) / "found.toml"), "--json"]
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _CREDSYNC, *argv], capture_output=True, text=True, cwd=tmp
        )
        elapsed = time.perf_counter() - start
    # Exit 1 means found and written, but an uncaught error exits 1 too. Hypothesis may print
    # a warning (a shrink it gave up on) before the JSON: read from the object's first line.
    start_of_json = done.stdout.find("\n{") + 1 if not done.stdout.startswith("{") else 0
    try:
        summary: dict[str, Any] = json.loads(done.stdout[start_of_json:])
    except ValueError:
        summary = {}
    if done.returncode not in (0, 1) or "found" not in summary:
        raise RuntimeError(f"credsync {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return elapsed, summary.get("actions") if summary["found"] else None


_CREDSYNC = "import sys; from scenarios.cli import main; sys.exit(main(sys.argv[1:]))"


class _RandomData:
    """Stands in for ``st.data()`` in a random walk: draws uniformly with ``random.Random``
    from the few strategies the machine's rules use."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def draw(self, strategy: st.SearchStrategy[Any], label: object = None) -> Any:
        return sample(strategy, self._rng)


def sample(strategy: st.SearchStrategy[Any], rng: random.Random) -> Any:
    inner = strategy
    while hasattr(inner, "wrapped_strategy"):
        inner = inner.wrapped_strategy
    kind = type(inner).__name__
    if kind == "IntegersStrategy":
        return rng.randint(inner.start, inner.end)  # type: ignore[attr-defined]
    if kind in ("SampledFromStrategy", "JustStrategy"):
        return rng.choice(inner.elements)  # type: ignore[attr-defined]
    if kind == "BooleansStrategy":
        return rng.random() < 0.5
    if kind == "DataStrategy":
        return _RandomData(rng)
    if kind == "CompositeStrategy":  # an @st.composite: run its body with our draws
        draw = _RandomData(rng).draw
        return inner.definition(draw, *inner.args, **inner.kwargs)  # type: ignore[attr-defined]
    raise TypeError(f"the random walk cannot draw from {strategy!r}")


def random_walk(symptom: int, seed: int, seconds: float) -> float | None:
    """Runs of :data:`FUZZ_STEPS` rules picked uniformly at random (arguments too), judged
    like the hunt (safety after each step, liveness at the end), until a run shows the
    symptom or ``seconds`` pass. Seconds to detection, or None."""
    predicate = PREDICATES[symptom]
    rng = random.Random(seed)
    state = SyncMachine.setup_state()  # type: ignore[no-untyped-call]
    rules = sorted(state.rules, key=lambda r: r.function.__name__)
    (setup,) = state.initializers
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        machine = _LegacyWalk()
        _call(machine, setup, rng)
        found = any(predicate(machine.world, v) for v in _safety(machine))
        for _ in range(0 if found else FUZZ_STEPS):
            _call(machine, rng.choice(rules), rng)
            world = machine.world
            if any(predicate(world, v) for v in _safety(machine)):
                found = True
                break
        if found or any(predicate(machine.world, v) for v in machine.sim.settle()):
            return time.perf_counter() - start
    return None


def _call(machine: SyncMachine, rule_: Any, rng: random.Random) -> None:
    kwargs = {name: sample(s, rng) for name, s in rule_.arguments.items()}
    rule_.function(machine, **kwargs)


class _LegacyWalk(SyncMachine):
    new_engine = LegacyEngine
    restore_engine = LegacyEngine.from_json  # type: ignore[assignment]


def _safety(machine: SyncMachine) -> list[Violation]:
    return check(machine.sim.view(), SAFETY)


def detection(quick: bool) -> list[Result]:
    """Each symptom hunted from ``seeds``; the random walk gets the same seeds and the
    fuzz's wall-clock budget. A walk that finds nothing counts as the whole budget."""
    seeds = (1,) if quick else (1, 2, 3, 4, 5)
    minutes = 0.25 if quick else 1.0
    per_symptom: dict[str, object] = {}
    found = 0
    medians: list[float] = []
    versus_walk: list[float] = []
    lengths: list[int] = []
    for symptom in sorted(PREDICATES):
        hunts = [hunt(symptom, seed, minutes) for seed in seeds]
        walks = [random_walk(symptom, seed, 60 * minutes) for seed in seeds]
        times = [t for t, _ in hunts]
        shrunk = [n for _, n in hunts]
        found += all(n is not None for n in shrunk)
        lengths += [n for n in shrunk if n is not None]
        median = statistics.median(times)
        walk_median = statistics.median(60 * minutes if w is None else w for w in walks)
        medians.append(median)
        versus_walk.append(median / walk_median)
        per_symptom[f"symptom_{symptom}"] = {
            "hunt_s": times,
            "shrunk_steps": shrunk,
            "random_walk_s": walks,
        }
    common = {"seeds": list(seeds), "budget_minutes": minutes}
    return [
        Result(
            "5a",
            "symptoms found by the hunt on every seed (legacy engine)",
            found,
            Goal(">=", len(PREDICATES), ""),
            {**common, **per_symptom},
        ),
        Result(
            "5b",
            "worst symptom's median seconds to a shrunk counterexample",
            max(medians),
            Goal("<", 10, " s"),
            {"medians_s": medians, **common},
        ),
        Result(
            "5c",
            "longest shrunk counterexample, in actions",
            max(lengths, default=float("inf")),
            Goal("<=", 15, ""),
            common,
        ),
        Result(
            "5d",
            "hunt vs random walk: worst ratio of median detection times",
            max(versus_walk),
            Goal("<", 1),
            {"ratios": versus_walk, **common},
        ),
    ]
