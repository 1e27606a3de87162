"""Figures 4 and 5: how much fuzzing an hour buys.

Figure 4 compares the credsync machine's stateful steps per second with an empty
``RuleBasedStateMachine`` under the same settings, which is what Hypothesis itself costs
per step. Figure 5 times ``credsync fuzz --symptom N`` two ways: to its first failing
example, in process, against a plain random walk over the same rules (drawn with
``random.Random``) timed the same way to its first failing run; and, as a user runs it, to
the written, shrunk counterexample (interpreter start and shrinking included).
"""

from __future__ import annotations

import json
import math
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
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from benchmarks.measure import Goal, Result, measure
from scenarios.fuzzing import Plan, Target, run_settings
from scenarios.legacy import LegacyEngine
from scenarios.symptoms import INVARIANTS, PREDICATES
from simulators.harness.invariants import SAFETY, Violation, check
from simulators.harness.machine import SyncMachine

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
    examples, repeats = (10, 3) if quick else (40, 3)  # within 15 s and 40 s
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


def hunt(symptom: int, seed: int, minutes: float, timeout: float) -> tuple[float, int | None]:
    """``credsync fuzz --engine legacy --symptom N``, as a user runs it (in its own process,
    so the interpreter's start, about a second, is included): seconds to a shrunk
    counterexample, written and confirmed, and its length in actions (None: not found).
    A hunt still running after ``timeout`` seconds is stopped and counts as never done
    (``inf``): past the goal, how much longer it would take does not change the verdict."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["fuzz", "--engine", "legacy", "--symptom", str(symptom), "--seed", str(seed)]
        argv += ["--minutes", str(minutes), "--out", str(Path(tmp) / "found.toml"), "--json"]
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-c", _CREDSYNC, *argv],
                capture_output=True,
                text=True,
                cwd=tmp,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return math.inf, None
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


def first_detection(symptom: int, seed: int, seconds: float) -> float | None:
    """The same hunt in this process, stopped at its first failing example: the batches
    ``credsync fuzz --seed`` runs, generation only. Seconds from the start of the search
    to the moment a run first showed the symptom (None: not within ``seconds``), timed as
    :func:`random_walk` is, so the two compare like with like."""
    target = Target("legacy", symptom)
    detected: list[float] = []

    class Timed(target.machine()):  # type: ignore[misc]
        def relevant(self, violation: Violation) -> bool:
            hit: bool = super().relevant(violation)
            if hit and not detected:
                detected.append(time.perf_counter())
            return hit

    build = target.factory(Timed)
    plan = Plan(target, seed, 1, math.inf, None)
    budget = run_settings(None, (Phase.generate,))
    start = time.perf_counter()
    batch = 0
    while time.perf_counter() - start < seconds:
        seeded = hypothesis_seed(plan.batch_seed(batch))(build)
        try:
            run_state_machine_as_test(seeded, settings=budget)  # type: ignore[no-untyped-call]
        except AssertionError:
            return detected[0] - start if detected else time.perf_counter() - start
        batch += 1
    return None


_CREDSYNC = "import sys; from scenarios.cli import main; sys.exit(main(sys.argv[1:]))"


class _RandomData:
    """Stands in for ``st.data()`` in a random walk: draws uniformly with ``random.Random``
    from the few strategies the machine's rules use."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.conjecture_data = self  # where HypothesisChoices takes its fault decisions

    def draw(self, strategy: st.SearchStrategy[Any], label: object = None) -> Any:
        return sample(strategy, self._rng)

    def draw_integer(
        self, min_value: int, max_value: int, weights: dict[int, float] | None = None
    ) -> int:
        if weights is None:
            return self._rng.randint(min_value, max_value)
        return self._rng.choices(list(weights), list(weights.values()))[0]


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
    like the hunt (the symptom's safety invariants after each step, its liveness and
    quiescence ones at the end), until a run shows the symptom or ``seconds`` pass.
    Seconds to detection, or None."""
    predicate, judged = PREDICATES[symptom], INVARIANTS[symptom]
    rng = random.Random(seed)
    state = SyncMachine.setup_state()  # type: ignore[no-untyped-call]
    rules = sorted(state.rules, key=lambda r: r.function.__name__)
    (setup,) = state.initializers
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        machine = _LegacyWalk()
        _call(machine, setup, rng)
        found = any(predicate(machine.world, v) for v in _safety(machine, judged))
        for _ in range(0 if found else FUZZ_STEPS):
            _call(machine, rng.choice(rules), rng)
            world = machine.world
            if any(predicate(world, v) for v in _safety(machine, judged)):
                found = True
                break
        if found or any(predicate(machine.world, v) for v in machine.sim.settle(judged)):
            return time.perf_counter() - start
    return None


def _call(machine: SyncMachine, rule_: Any, rng: random.Random) -> None:
    kwargs = {name: sample(s, rng) for name, s in rule_.arguments.items()}
    rule_.function(machine, **kwargs)


class _LegacyWalk(SyncMachine):
    new_engine = LegacyEngine
    restore_engine = LegacyEngine.from_json  # type: ignore[assignment]


def _safety(machine: SyncMachine, judged: frozenset[str]) -> list[Violation]:
    invariants = {name: SAFETY[name] for name in sorted(judged & set(SAFETY))}
    return check(machine.sim.view(), invariants) if invariants else []


def detection(quick: bool) -> list[Result]:
    """Each symptom hunted from ``seeds``, three ways: the hunt in this process to its first
    failing example, the random walk (same seeds) to its first failing run, both timed from
    the start of their search and given ``search_s`` (a search that finds nothing counts as
    the whole of it); and ``credsync fuzz`` in its own process to the written, shrunk
    counterexample, stopped after ``shrunk_timeout_s`` (then counted as ``inf``). Once more
    than half of a symptom's hunts have timed out its median is ``inf`` whatever the rest
    do, so the rest are not run (``None`` in the details)."""
    seeds = (1,) if quick else (1, 2, 3, 4, 5)
    minutes = 0.25 if quick else 1.0
    search_s = 10.0 if quick else 20.0
    shrunk_timeout = 4.0 if quick else 10.0
    per_symptom: dict[str, object] = {}
    found = 0
    medians: list[float] = []
    detected_medians: list[float] = []
    versus_walk: list[float] = []
    lengths: list[int] = []
    for symptom in sorted(PREDICATES):
        firsts = [first_detection(symptom, seed, search_s) for seed in seeds]
        walks = [random_walk(symptom, seed, search_s) for seed in seeds]
        hunts: list[tuple[float, int | None] | None] = []
        for seed in seeds:
            if sum(h is not None and h[0] == math.inf for h in hunts) > len(seeds) // 2:
                hunts.append(None)  # the median is inf already
            else:
                hunts.append(hunt(symptom, seed, minutes, shrunk_timeout))
        times = [math.inf if h is None else h[0] for h in hunts]
        shrunk = [None if h is None else h[1] for h in hunts]
        found += all(t is not None for t in firsts)
        lengths += [n for n in shrunk if n is not None]
        detected = statistics.median(search_s if t is None else t for t in firsts)
        walk_median = statistics.median(search_s if w is None else w for w in walks)
        medians.append(statistics.median(times))
        detected_medians.append(detected)
        versus_walk.append(detected / walk_median)
        per_symptom[f"symptom_{symptom}"] = {
            "first_detection_s": firsts,
            "random_walk_s": walks,
            "shrunk_counterexample_s": [None if h is None else h[0] for h in hunts],
            "shrunk_steps": shrunk,
        }
    common = {
        "seeds": list(seeds),
        "budget_minutes": minutes,
        "search_s": search_s,
        "shrunk_timeout_s": shrunk_timeout,
    }
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
            "worst symptom's median seconds to a shrunk counterexample (from process start)",
            max(medians),
            Goal("<", 10, " s"),
            {"medians_s": medians, **common},
        ),
        Result(
            "5c",
            "longest shrunk counterexample, in actions",
            max(lengths, default=math.inf),
            Goal("<=", 15, ""),
            common,
        ),
        Result(
            "5d",
            "hunt vs random walk: worst ratio of median times to first detection (in process)",
            max(versus_walk),
            Goal("<", 1),
            {"ratios": versus_walk, "hunt_medians_s": detected_medians, **common},
        ),
    ]
