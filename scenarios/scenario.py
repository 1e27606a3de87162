"""Scenarios: a world, a timeline of Canvas activity and faults, and what should break.

A scenario is a TOML file QA can copy and edit without writing Python::

    name = "enrollment-not-reflected"
    description = "An SIS import after linking never reaches the group"
    symptom = 4                       # the known symptom it reproduces (1-5), optional
    seed = 7                          # names, emails, grades and seeded faults
    world = "small"                   # small | semester | large, or [[courses]] tables
    link = "all"                      # or a list of course ids linked at the start
    expect = ["members-match-enrollments"]   # what the legacy engine should break
    breaks = "legacy"                 # or the engine variant that must break it (see below)

    [faults]                          # optional: rates in per mille from the start
    transient_5xx = 50
    on = ["canvas-read"]              # optional targets (simulators.faults.TARGETS)

    [[timeline]]
    do = "sis-import"
    course = 102
    students = 40

    [[timeline]]
    do = "wait"
    hours = 6

``[[courses]]`` tables describe a world like ``credsync serve --world FILE`` does
(:mod:`simulators.worlds`). A ``[policy]`` table overrides the engine's timings. ``breaks``
names the engine that must break what ``expect`` lists: ``legacy`` (the default), or one of
the engine variants of :data:`scenarios.variants.VARIANTS`, for a flaw the core once had that
the legacy engine, built differently, does not show (a lagging read cannot fool an engine
that never reads before it awards). A scenario written by ``credsync fuzz`` also carries
``faults.draws``: the exact fault decisions of the run Hypothesis found, replayed in order.

:func:`run` plays a scenario against an engine: safety invariants are judged after every
action, then faults stop and the liveness phase of :meth:`Simulation.settle` runs. The core
must hold everything; the legacy engine (or the variant ``breaks`` names) must break what
``expect`` names.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from scenarios.legacy import LegacyEngine
from scenarios.variants import VARIANTS
from simulators.canvas.model import RateLimit
from simulators.faults import (
    FaultKind,
    FaultPlan,
    FaultRates,
    ScriptedChoices,
    ScriptExhausted,
    SeededChoices,
)
from simulators.harness.actions import ACTIONS, ActionError, perform
from simulators.harness.invariants import QUIESCENCE, SAFETY, Violation, check
from simulators.harness.simulation import Engine, Simulation, Transport, TransportFactory
from simulators.transport import MemoryTransport
from simulators.world import World
from simulators.worlds import LARGE, SEMESTER, WorldSpecError, build, course_spec
from sync_core import AwardRule, Policy, SyncEngine

INVARIANTS = (
    *SAFETY,
    *QUIESCENCE,
    "course-freshness",
    "progress-under-load",
    "update-now-repairs",
)
SYMPTOMS = {
    1: "courses without assignments or quizzes never sync",
    2: "courses that stop syncing",
    3: 'badges missing, or "Earned" but never "Awarded"',
    4: "students enrolled automatically missing from the group",
    5: "the leaderboard stops updating",
}
ENGINES: Mapping[str, tuple[Callable[[Policy], Engine], Callable[[str, Policy], Engine]]] = {
    "core": (SyncEngine, SyncEngine.from_json),
    "legacy": (LegacyEngine, LegacyEngine.from_json),
}
RUNNABLE: Mapping[str, tuple[Callable[[Policy], Engine], Callable[[str, Policy], Engine]]] = {
    **ENGINES,
    **{name: (variant, variant.from_json) for name, variant in VARIANTS.items()},
}
"""Every engine a scenario runs against: the two of :data:`ENGINES`, then each variant of
:data:`scenarios.variants.VARIANTS` by its name (``credsync scenario run --engine``). The
fuzzer keeps to :data:`ENGINES`."""
BREAKERS = ("legacy", *VARIANTS)
"""What a scenario's ``breaks`` may name: the engines that are meant to fail."""


def _asgi(world: World, plan: FaultPlan) -> Transport:
    # The web stack loads only when a scenario asks for it: importing FastAPI costs about a
    # second, which every `credsync` command (a restarted `credsync sync` above all) would pay.
    from simulators.http.transport import AsgiTransport

    return AsgiTransport(world, plan)


def _http(world: World, plan: FaultPlan) -> Transport:
    from simulators.http.transport import LiveHttpTransport

    return LiveHttpTransport(world, plan)


TRANSPORTS: Mapping[str, TransportFactory] = {
    "memory": MemoryTransport,
    "asgi": _asgi,
    "http": _http,
}
_KEYS = {
    "name",
    "description",
    "symptom",
    "seed",
    "world",
    "courses",
    "link",
    "expect",
    "breaks",
    "faults",
    "policy",
    "rate_limit",
    "timeline",
}


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file and the problem."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    symptom: int | None
    seed: int
    world: str | tuple[Mapping[str, Any], ...]
    link: str | tuple[int, ...]
    expect: tuple[str, ...]  # in the file's order: the symptom's own invariant first
    breaks: str  # the engine that must break what expect names: legacy or a variant
    faults: Mapping[str, Any]
    policy: Mapping[str, Any]
    timeline: tuple[Mapping[str, Any], ...]
    source: Mapping[str, Any] = field(repr=False, compare=False)  # the file as read
    rate_limit: Mapping[str, Any] = field(default_factory=dict)  # Canvas's throttle settings

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Scenario:
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise ScenarioError(f"{where}: unknown keys {unknown}; known: {sorted(_KEYS)}")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ScenarioError(f"{where}: 'name' must be a non-empty string")
        symptom = data.get("symptom")
        if symptom is not None and symptom not in SYMPTOMS:
            raise ScenarioError(f"{where}: 'symptom' must be one of {sorted(SYMPTOMS)}")
        seed = data.get("seed", 1)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ScenarioError(f"{where}: 'seed' must be a whole number")
        world: str | tuple[Mapping[str, Any], ...]
        if "courses" in data:
            courses = data["courses"]
            if not isinstance(courses, list) or not courses:
                raise ScenarioError(f"{where}: 'courses' must be a list of course tables")
            try:
                for i, entry in enumerate(courses):
                    course_spec(entry, f"{where}: course {i}")
            except WorldSpecError as exc:
                raise ScenarioError(str(exc)) from exc
            world = tuple(courses)
        else:
            world = data.get("world", "small")
            if world not in ("small", "semester", "large"):
                raise ScenarioError(
                    f"{where}: 'world' must be small, semester or large, or give [[courses]]"
                )
        link = data.get("link", "all")
        if link != "all" and not (
            isinstance(link, list)
            and all(isinstance(c, int) and not isinstance(c, bool) for c in link)
        ):
            raise ScenarioError(f"{where}: 'link' must be \"all\" or a list of course ids")
        expect = data.get("expect", [])
        if not isinstance(expect, list) or not set(expect) <= set(INVARIANTS):
            raise ScenarioError(f"{where}: 'expect' must list invariants from {list(INVARIANTS)}")
        breaks = data.get("breaks", "legacy")
        if breaks not in BREAKERS:
            raise ScenarioError(
                f"{where}: 'breaks' must name the legacy engine or a variant: "
                f"{', '.join(BREAKERS)} (not {breaks!r})"
            )
        faults = data.get("faults", {})
        rate_keys = {k.value for k in FaultKind}
        extra = {"on", "draws", "beyond_bounds"}
        if not isinstance(faults, Mapping) or not set(faults) <= rate_keys | extra:
            raise ScenarioError(
                f"{where}: [faults] takes rates {sorted(rate_keys)}, 'on', 'draws', 'beyond_bounds'"
            )
        if not isinstance(faults.get("beyond_bounds", False), bool):
            raise ScenarioError(f"{where}: [faults] beyond_bounds must be true or false")
        policy = data.get("policy", {})
        known_policy = {f.name for f in fields(Policy)}
        if not isinstance(policy, Mapping) or not set(policy) <= known_policy:
            raise ScenarioError(f"{where}: [policy] takes {sorted(known_policy)}")
        rate_limit = data.get("rate_limit", {})
        known_limit = {f.name for f in fields(RateLimit)}
        if not isinstance(rate_limit, Mapping) or not set(rate_limit) <= known_limit:
            raise ScenarioError(f"{where}: [rate_limit] takes {sorted(known_limit)}")
        try:
            RateLimit(**rate_limit)
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"{where}: [rate_limit]: {exc}") from exc
        timeline = data.get("timeline", [])
        if not isinstance(timeline, list) or not all(isinstance(a, Mapping) for a in timeline):
            raise ScenarioError(f"{where}: 'timeline' must be a list of actions ([[timeline]])")
        for i, action in enumerate(timeline):
            if action.get("do") not in ACTIONS:
                raise ScenarioError(
                    f"{where}: timeline[{i}]: unknown action {action.get('do')!r}; "
                    f"known: {', '.join(ACTIONS)}"
                )
        return cls(
            name=name,
            description=str(data.get("description", "")),
            symptom=symptom,
            seed=seed,
            world=world,
            link="all" if link == "all" else tuple(link),
            expect=tuple(dict.fromkeys(expect)),
            breaks=breaks,
            faults=dict(faults),
            policy=dict(policy),
            timeline=tuple(dict(a) for a in timeline),
            source=dict(data),
            rate_limit=dict(rate_limit),
        )


def ordered(names: list[str]) -> list[Scenario]:
    """Scenarios loaded, known symptoms first in their order, then the rest by name."""
    loaded = [load(name) for name in names]
    return sorted(loaded, key=lambda s: (s.symptom is None, s.symptom or 0, s.name))


def builtin() -> dict[str, Path]:
    """The scenarios that ship with credsync, by name (``scenarios/library/*.toml``)."""
    library = resources.files("scenarios") / "library"
    return {
        p.name.removesuffix(".toml"): Path(str(p))
        for p in library.iterdir()
        if p.name.endswith(".toml")
    }


def load(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    path = builtin().get(name_or_path) or Path(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        known = ", ".join(sorted(builtin()))
        raise ScenarioError(
            f"no scenario {name_or_path!r}: not a built-in ({known}) nor a file"
        ) from exc
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    return Scenario.from_dict(data, str(path))


@dataclass(frozen=True)
class Found:
    """A violation with when and in which phase it was found."""

    at: float
    phase: str  # "safety" | "liveness" | "quiescence"
    violation: Violation


@dataclass
class Run:
    scenario: Scenario
    engine: str
    seed: int
    transport: str
    sim: Simulation
    started_at: float
    found: list[Found]
    error: str | None = None  # the run could not go on (a bad action, a replay gone astray)

    @property
    def broken(self) -> frozenset[str]:
        return frozenset(f.violation.invariant for f in self.found)

    @property
    def verdict(self) -> str:
        return "FAIL" if self.found or self.error else "PASS"

    def first(self, invariant: str) -> Found | None:
        return next((f for f in self.found if f.violation.invariant == invariant), None)

    def faults_before(self, at: float, course_id: int | None = None, limit: int = 5) -> list[str]:
        """The last faults and crashes up to ``at``: of that course (and world-wide ones)
        when one is named."""
        faults = [
            e
            for e in self.sim.trace
            if e.kind in ("fault", "crash")
            and e.at <= at
            and (course_id is None or e.course_id in (None, course_id))
        ]
        return [
            f"t={offset(e.at - self.started_at)} "
            f"{'' if e.course_id is None else f'course {e.course_id}: '}{e.detail}"
            for e in faults[-limit:]
        ]

    def record(self) -> dict[str, Any]:
        """The run as plain data: for ``--json``, the HTML report and trace files."""
        view = self.sim.view()
        world = self.sim.world
        quarantined = {s.course_id: s.quarantined for s in self.sim.engine.status()}
        courses = [
            {
                "course_id": c.course_id,
                "name": world.canvas.courses[c.course_id].name,
                "students": len(c.active_students),
                "members": len(c.members),
                "earned": len(c.earned_now),
                "awards": sum(1 for a in view.assertions if a.badge_class in c.badge_classes),
                "last_synced": c.last_synced,
                "quarantined": [
                    {"resource": q.resource, "reason": q.reason}
                    for q in quarantined.get(c.course_id, ())
                ],
            }
            for c in view.courses
        ]
        invariants = []
        for name in INVARIANTS:
            first = self.first(name)
            invariants.append(
                {
                    "name": name,
                    "holds": first is None,
                    "first": None
                    if first is None
                    else {
                        "at": first.at,
                        "course_id": first.violation.course_id,
                        "user_id": first.violation.user_id,
                        "detail": first.violation.detail,
                        "phase": first.phase,
                        "faults_before": self.faults_before(first.at, first.violation.course_id),
                    },
                }
            )
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "symptom": self.scenario.symptom,
            "engine": self.engine,
            "seed": self.seed,
            "transport": self.transport,
            "verdict": self.verdict,
            "error": self.error,
            "expect": list(self.scenario.expect),
            "breaks": self.scenario.breaks,
            "started_at": self.started_at,
            "ended_at": self.sim.now,
            "invariants": invariants,
            "violations": [
                {
                    "invariant": f.violation.invariant,
                    "course_id": f.violation.course_id,
                    "user_id": f.violation.user_id,
                    "detail": f.violation.detail,
                    "at": f.at,
                    "phase": f.phase,
                }
                for f in self.found
            ],
            "courses": courses,
            "trace": [
                {"at": e.at, "kind": e.kind, "course_id": e.course_id, "detail": e.detail}
                for e in self.sim.trace
            ],
        }


def offset(seconds: float) -> str:
    """Virtual time since the start, as ``+1d 02:03:04`` (days only when there are any)."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"+{days}d {text}" if days else f"+{text}"


def _world(scenario: Scenario, seed: int) -> tuple[World, dict[int, tuple[AwardRule, ...]]]:
    if scenario.world == "small":
        return World.small(seed)
    if scenario.world == "semester":
        return build(SEMESTER, seed)
    if scenario.world == "large":
        return build(LARGE, seed)
    specs = tuple(course_spec(c, f"course {i}") for i, c in enumerate(scenario.world))
    return build(specs, seed)


def run(
    scenario: Scenario,
    engine: str = "core",
    seed: int | None = None,
    transport: str = "memory",
    on_step: Callable[[int], None] | None = None,
) -> Run:
    """Play the scenario; ``on_step(i)`` is called after each timeline action (progress)."""
    if engine not in RUNNABLE:
        raise ScenarioError(f"no engine {engine!r}; choose from {', '.join(RUNNABLE)}")
    seed = scenario.seed if seed is None else seed
    world, rules = _world(scenario, seed)
    world.canvas.rate_limit = RateLimit(**scenario.rate_limit)
    draws = scenario.faults.get("draws")
    source = SeededChoices(seed) if draws is None else ScriptedChoices(list(draws))
    settings = ("on", "draws", "beyond_bounds")
    rates = FaultRates(**{k: v for k, v in scenario.faults.items() if k not in settings})
    plan = FaultPlan(rates, source)
    plan.beyond_bounds = bool(scenario.faults.get("beyond_bounds", False))
    if "on" in scenario.faults:
        plan.only = frozenset(scenario.faults["on"])
    new_engine, restore_engine = RUNNABLE[engine]
    sim = Simulation(
        world,
        plan,
        policy=Policy(**scenario.policy),
        new_engine=new_engine,
        restore_engine=restore_engine,
        transport_factory=TRANSPORTS[transport],
    )
    result = Run(scenario, engine, seed, transport, sim, sim.now, [])
    seen: set[Violation] = set()

    def judge(phase: str, violations: Sequence[Violation], at: float) -> None:
        for v in violations:
            if v not in seen:
                seen.add(v)
                result.found.append(Found(at, phase, v))

    try:
        link = sorted(rules) if scenario.link == "all" else list(scenario.link)
        for course_id in link:
            if course_id not in rules:
                raise ActionError(f"link: no course {course_id} in this world ({sorted(rules)})")
            sim.link(world.link_course(course_id, rules[course_id]))
        judge("safety", check(sim.view(), SAFETY), sim.now)
        for i, action in enumerate(scenario.timeline):
            try:
                perform(sim, action)
            except ActionError as exc:
                raise ActionError(f"timeline[{i}] {dict(action)}: {exc}") from exc
            judge("safety", check(sim.view(), SAFETY), sim.now)
            if on_step is not None:
                on_step(i)
        sim.settle()
        for at, phase, v in sim.judged:
            judge(phase, [v], at)
    except (ActionError, ScriptExhausted) as exc:
        result.error = str(exc)
    finally:
        close = getattr(sim.transport, "close", None)
        if close is not None:
            close()
    return result
