"""The ``credsync`` command line.

``credsync simulate`` runs the sync core through a seeded term of Canvas activity against
the simulated services, with faults, then stops the faults and checks every invariant. The
same seed always gives the same run, so any verdict can be replayed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from simulators.activity import random_activity
from simulators.faults import FaultPlan, FaultRates, SeededChoices
from simulators.harness import Simulation
from simulators.invariants import SAFETY, Violation, check
from simulators.serve import serve_forever
from simulators.services import Services
from simulators.world import World

FAULT_PROFILES = ("none", "swarm")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="credsync", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    simulate = commands.add_parser(
        "simulate", help="run the sync core through a simulated term with faults"
    )
    simulate.add_argument("--seed", type=int, default=1, help="replay key (default 1)")
    simulate.add_argument("--days", type=int, default=7, help="simulated days (default 7)")
    simulate.add_argument(
        "--faults",
        choices=FAULT_PROFILES,
        default="swarm",
        help="swarm: per-kind rates drawn from the seed, none to very high (default)",
    )
    simulate.add_argument("--json", action="store_true", help="machine-readable output")
    serve = commands.add_parser(
        "serve", help="run the fake Canvas and Credentials over HTTP until Ctrl-C"
    )
    serve.add_argument("--canvas-port", type=int, default=0, help="default: any free port")
    serve.add_argument("--credentials-port", type=int, default=0, help="default: any free port")
    serve.add_argument(
        "--host", default="127.0.0.1", help="bind address (default 127.0.0.1, loopback only)"
    )
    serve.add_argument("--world", choices=("small",), default="small", help="default: small")
    serve.add_argument("--seed", type=int, default=1, help="seeds the world and the faults")
    serve.add_argument("--faults", choices=FAULT_PROFILES, default="none", help="default: none")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return run_serve(args)
    if args.days < 0:
        parser.error("--days must be zero or more")
    return run_simulation(args.seed, args.days, args.faults, args.json)


def run_serve(args: argparse.Namespace) -> int:
    """Serve ``World.small(seed)`` with its courses linked, so a client sees groups too."""
    choices = SeededChoices(args.seed)
    world, rules = World.small(args.seed)
    for course_id, course_rules in sorted(rules.items()):
        world.link_course(course_id, course_rules)
    rates = FaultRates.swarm(choices) if args.faults == "swarm" else FaultRates.none()
    services = Services(world, FaultPlan(rates, choices))
    serve_forever(world, services, args.canvas_port, args.credentials_port, args.host, sys.stdout)
    return 0


def run_simulation(seed: int, days: int, faults: str, as_json: bool) -> int:
    choices = SeededChoices(seed)
    world, rules = World.small(seed)
    rates = FaultRates.swarm(choices) if faults == "swarm" else FaultRates.none()
    sim = Simulation(world, FaultPlan(rates, choices))
    for course_id, course_rules in sorted(rules.items()):
        sim.link(world.link_course(course_id, course_rules))
    violations: list[Violation] = []
    activity = 0
    for _hour in range(days * 24):
        if random_activity(world, choices) is not None:
            activity += 1
        sim.advance(3600)
        violations += check(sim.view(), SAFETY)
        if violations:
            break
    if not violations:
        violations = sim.settle()
    report = _report(sim, seed, rates, activity, violations)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 1 if violations else 0


def _report(
    sim: Simulation, seed: int, rates: FaultRates, activity: int, violations: list[Violation]
) -> dict[str, object]:
    view = sim.view()
    statuses = {s.course_id: s for s in sim.engine.status()}
    courses = []
    for course in view.courses:
        status = statuses[course.course_id]
        courses.append(
            {
                "course_id": course.course_id,
                "students": len(course.active_students),
                "members": len(course.members),
                "earned": len(course.earned_now),
                "awards": sum(1 for a in view.assertions if a.badge_class in course.badge_classes),
                "last_synced": course.last_synced,
                "failures": status.failures,
                "quarantined": [q.reason for q in status.quarantined],
            }
        )
    faults = Counter(f.value for _, _, f, _ in sim.transport.log if f is not None)
    return {
        "seed": seed,
        "virtual_time": view.now,
        "fault_rates_per_mille": {k: v for k, v in vars(rates).items() if v},
        "faults_injected": dict(sorted(faults.items())),
        "worker_crashes": sim.crashes,
        "canvas_changes": activity,
        "requests": len(sim.transport.log),
        "courses": courses,
        "violations": [str(v) for v in violations],
        "verdict": "FAIL" if violations else "PASS",
    }


def _print(report: dict[str, object]) -> None:
    console = Console()
    console.print(
        f"credsync simulate: seed {report['seed']}, {report['canvas_changes']} Canvas changes, "
        f"{report['requests']} requests, {report['worker_crashes']} worker crashes"
    )
    console.print(f"fault rates (per mille): {report['fault_rates_per_mille'] or 'none'}")
    console.print(f"faults injected: {report['faults_injected'] or 'none'}")
    table = Table(title="courses after the liveness phase")
    for column in ("course", "students", "members", "earned", "awards", "failures", "quarantined"):
        table.add_column(column)
    for c in report["courses"]:  # type: ignore[attr-defined]
        table.add_row(
            str(c["course_id"]),
            str(c["students"]),
            str(c["members"]),
            str(c["earned"]),
            str(c["awards"]),
            str(c["failures"]),
            "; ".join(c["quarantined"]) or "-",
        )
    console.print(table)
    for line in report["violations"]:  # type: ignore[attr-defined]
        console.print(f"[red]{line}[/red]")
    verdict = report["verdict"]
    colour = "green" if verdict == "PASS" else "red"
    console.print(
        f"[{colour}]{verdict}[/{colour}]: every invariant holds"
        if verdict == "PASS"
        else f"[{colour}]{verdict}[/{colour}]"
    )


if __name__ == "__main__":
    sys.exit(main())
