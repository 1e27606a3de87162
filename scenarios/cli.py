"""The ``credsync`` command line.

``credsync simulate`` runs the sync core through a seeded term of Canvas activity against
the simulated services, with faults, then stops the faults and checks every invariant. The
same seed always gives the same run, so any verdict can be replayed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from adapter.http import HttpAdapter
from adapter.links import LinksError, links_to_json, load_links
from adapter.runner import RoundEnded, apply_links, load_engine, run_sync
from adapter.store import SqliteStore
from adapter.summary import summary
from adapter.tokens import OAuthToken
from scenarios.qa import add_commands, dispatch
from simulators.faults import FaultPlan, FaultRates, SeededChoices
from simulators.harness.activity import random_activity
from simulators.harness.invariants import SAFETY, Violation, check
from simulators.harness.simulation import Simulation
from simulators.services import Services
from simulators.world import World
from simulators.worlds import WorldSpecError, load_world
from sync_core import StateError
from sync_core.schedule import Policy

FAULT_PROFILES = ("none", "swarm")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("scenario", "replay", "fuzz"):
        return dispatch(args)
    if args.command == "serve":
        return run_serve(args)
    if args.command == "sync":
        return run_sync_command(args)
    if args.days < 0:
        parser.error("--days must be zero or more")
    return run_simulation(args.seed, args.days, args.faults, args.json)


def build_parser() -> argparse.ArgumentParser:
    """Every command and option; the README's display-only commands are checked against it."""
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
    serve.add_argument(
        "--world",
        default="small",
        metavar="small|semester|large|FILE",
        help="small (3 courses, default), semester (12 courses), large (a 2,000-student "
        "course and two others), or a JSON/TOML world file",
    )
    serve.add_argument("--seed", type=int, default=1, help="seeds the world and the faults")
    serve.add_argument("--faults", choices=FAULT_PROFILES, default="none", help="default: none")
    serve.add_argument(
        "--canvas-throttle",
        type=int,
        choices=(403, 429),
        default=429,
        help="how Canvas says 'throttled': 429 (since Oct 2025, default) or the older 403",
    )
    serve.add_argument(
        "--links",
        type=Path,
        help="write the courses' links (group, award rules) to this JSON "
        "file, for credsync sync --links: the group API that holds them is not public",
    )
    sync = commands.add_parser(
        "sync", help="run the sync core through the reference adapter against two servers"
    )
    sync.add_argument("--canvas", required=True, metavar="URL", help="Canvas base URL")
    sync.add_argument("--canvas-token", metavar="TOKEN", **_token_option("CREDSYNC_CANVAS_TOKEN"))
    sync.add_argument("--credentials", required=True, metavar="URL", help="Credentials base URL")
    sync.add_argument(
        "--credentials-token", metavar="TOKEN", **_token_option("CREDSYNC_CREDENTIALS_TOKEN")
    )
    sync.add_argument(
        "--links",
        required=True,
        type=Path,
        metavar="FILE",
        help="JSON or TOML: each course's issuer, group and award rules",
    )
    sync.add_argument("--once", action="store_true", help="one round per course, then exit")
    sync.add_argument(
        "--award-settle-window",
        type=float,
        default=Policy().award_settle_window,
        metavar="SECONDS",
        help="how long an award whose outcome is unknown waits before a read may settle it: "
        "at least the longest replica lag plus the longest late commit your Credentials "
        "shows (default %(default)g)",
    )
    sync.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="durable engine state, a SQLite file (created if missing, never reset)",
    )
    add_commands(commands)
    return parser


def _token_option(variable: str) -> dict[str, Any]:
    """A token flag that defaults to ``variable``: a token on the command line is visible to
    other local users in the process list, so the environment is the safe way to pass it."""
    value = os.environ.get(variable)
    return {
        "default": value,
        "required": value is None,
        "help": f"default: ${variable} (keeps the token out of the process list)",
    }


def run_serve(args: argparse.Namespace) -> int:
    """Serve the chosen world with its courses linked, so a client sees groups too."""
    choices = SeededChoices(args.seed)
    try:
        world, rules = load_world(args.world, args.seed)
    except WorldSpecError as exc:
        print(f"credsync serve: {exc}", file=sys.stderr)
        return 2
    links = [world.link_course(course_id, r) for course_id, r in sorted(rules.items())]
    if args.links is not None:
        args.links.write_text(links_to_json(links), encoding="utf-8")
    rates = FaultRates.swarm(choices) if args.faults == "swarm" else FaultRates.none()
    services = Services(world, FaultPlan(rates, choices), args.canvas_throttle)
    # Imported here, not at the top: uvicorn and FastAPI cost every other command about a
    # second of start-up (a `credsync sync` restarted after a crash most of all).
    from simulators.http.serve import serve_forever

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


def run_sync_command(args: argparse.Namespace) -> int:
    """Sync until interrupted (or one round per course with ``--once``); print a line per
    course. Exit 1 when ``--once`` leaves a course failing, 2 on bad links or state."""
    store: SqliteStore | None = None
    try:
        links = load_links(args.links)
        store = None if args.state is None else SqliteStore(args.state)
        policy = Policy(award_settle_window=args.award_settle_window)
        engine = load_engine(store, policy)
    except (LinksError, StateError, ValueError) as exc:
        if store is not None:
            store.close()
        print(f"credsync sync: {exc}", file=sys.stderr)
        return 2
    apply_links(engine, links)

    async def sync() -> list[RoundEnded]:
        async with HttpAdapter(
            args.canvas,
            OAuthToken.static(args.canvas_token),
            args.credentials,
            OAuthToken.static(args.credentials_token),
        ) as adapter:
            return await run_sync(adapter, engine, once=args.once, store=store)

    try:
        ended = asyncio.run(sync())
    except KeyboardInterrupt:
        ended = []
    finally:
        if store is not None:
            store.close()
    for line in summary(engine):
        print(line)
    return 1 if any(not e.ok for e in ended) else 0


if __name__ == "__main__":
    sys.exit(main())
