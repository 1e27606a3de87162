"""``python -m benchmarks [--quick] [--json FILE] [--only FIGURE ...]``: run, print, record.

Prints one table (figure, measured value, goal, met?) and optionally writes the same as
JSON. A run of every group ends with one more row, its own wall time against issue 6's
budget (:data:`BUDGET_S`): the figures are only useful if people can afford to run them.
The exit status is 0 even when goals are missed: the table is the verdict, and a missed
goal is a finding to report. A group of figures that fails is reported, the others still
run, and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import core, fuzzing, serving, soak
from benchmarks.measure import Goal, Result

FIGURES: dict[str, Callable[[bool], list[Result]]] = {
    "1-3": core.figures,
    "4": lambda quick: [fuzzing.harness_overhead(quick)],
    "5": fuzzing.detection,
    "6": soak.figures,
    "7": serving.figures,
}
BUDGET_S = {True: 120.0, False: 600.0}
"""Wall-time budget of a run of every group: ``--quick`` (True) and full (False)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=sorted(FIGURES),
        metavar="FIGURE",
        help=f"run only these groups of figures ({', '.join(FIGURES)})",
    )
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    started = time.perf_counter()
    results: list[Result] = []
    timings: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name, figures in FIGURES.items():
        if args.only and name not in args.only:
            continue
        console.log(f"figure {name} ...")
        begun = time.perf_counter()
        try:
            results += figures(args.quick)
        except Exception as exc:  # one broken group must not cost the others' results
            errors[name] = f"{type(exc).__name__}: {exc}"
            console.print_exception()
        timings[name] = time.perf_counter() - begun
    elapsed = time.perf_counter() - started
    if not args.only:
        results.append(
            Result(
                "time",
                "wall time of this run, every group",
                elapsed,
                Goal("<", BUDGET_S[args.quick], " s"),
                {"seconds_per_group": timings},
            )
        )
    Console().print(table(results, args.quick, elapsed))
    for name, message in errors.items():
        console.print(f"[red]figure {name} failed:[/] {message}")
    if args.json is not None:
        report = {
            "quick": args.quick,
            "python": platform.python_version(),
            "seconds": elapsed,
            "seconds_per_group": timings,
            "results": [r.to_json() for r in results],
            "errors": errors,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if errors else 0


def table(results: list[Result], quick: bool, elapsed: float) -> Table:
    mode = "quick" if quick else "full"
    out = Table(title=f"credsync benchmarks ({mode}, {elapsed:.0f} s)")
    for column in ("figure", "what", "measured", "goal", "met?"):
        out.add_column(column)
    for r in results:
        unit = "x" if r.goal is None else r.goal.unit
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[r.met]
        goal = "-" if r.goal is None else str(r.goal)
        out.add_row(r.figure, r.name, f"{r.value:.3g}{unit}", goal, met)
    return out


if __name__ == "__main__":
    sys.exit(main())
