"""The QA commands: ``credsync scenario list|run|check``, ``credsync replay`` and
``credsync fuzz``.

Each prints for people by default and JSON with ``--json``; long runs show a progress bar on
standard error. Exit codes: 0 when the verdict is as it should be, 1 when an invariant broke
(or the ``check`` matrix is not as expected), 2 for bad input (an unknown scenario, a bad
file), 3 when a replay diverged from its recording.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scenarios.fuzzing import Plan, Target, fuzz, open_database
from scenarios.report import render_html
from scenarios.scenario import (
    ENGINES,
    RUNNABLE,
    SYMPTOMS,
    TRANSPORTS,
    Run,
    Scenario,
    ScenarioError,
    builtin,
    load,
    offset,
    ordered,
    run,
)
from scenarios.symptoms import PREDICATES

TRACE_FORMAT = "credsync-trace/1"
_VIOLATION = re.compile(r"^([a-z-]+) broken in course", re.MULTILINE)
_ENDED = {
    "found": "found a failure",
    "stopped": "stopped by another's failure",
    "budget": "budget spent",
}


def add_commands(commands: Any) -> None:
    """Add ``scenario``, ``replay`` and ``fuzz`` to the ``credsync`` parser."""
    scenario = commands.add_parser("scenario", help="named QA scenarios: list, run, check")
    verbs = scenario.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="the built-in scenarios, one line each")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    play = verbs.add_parser("run", help="run scenarios; exit 1 when an invariant breaks")
    play.add_argument("names", nargs="*", metavar="NAME|FILE", help="built-in name or TOML file")
    play.add_argument("--all", action="store_true", help="every built-in scenario")
    play.add_argument(
        "--engine",
        choices=list(RUNNABLE),
        default="core",
        metavar="ENGINE",
        help=f"{', '.join(RUNNABLE)} (default core; the others keep one flaw each)",
    )
    play.add_argument("--seed", type=int, help="override the scenario's seed")
    play.add_argument("--transport", choices=list(TRANSPORTS), default="memory")
    play.add_argument("--report", type=Path, metavar="FILE.html", help="write an HTML report")
    play.add_argument("--trace", type=Path, metavar="FILE.jsonl", help="record for replay")
    play.add_argument("--json", action="store_true", help="machine-readable output")
    matrix = verbs.add_parser(
        "check",
        help="every scenario against the core and the engine that must break it (legacy or "
        "a variant), as a matrix; exit 0 when as expected",
    )
    matrix.add_argument("--transport", choices=list(TRANSPORTS), default="memory")
    matrix.add_argument("--json", action="store_true", help="machine-readable output")
    replay = commands.add_parser("replay", help="re-run a recorded trace and compare")
    replay.add_argument("trace", type=Path, metavar="FILE.jsonl")
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    fuzz = commands.add_parser(
        "fuzz", help="run the stateful machine; write a failure as a scenario file"
    )
    fuzz.add_argument("--engine", choices=sorted(ENGINES), default="core")
    fuzz.add_argument("--minutes", type=float, default=1.0, help="wall-clock budget (default 1)")
    fuzz.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default 0)")
    fuzz.add_argument(
        "--symptom",
        type=int,
        choices=sorted(PREDICATES),
        help="hunt one known symptom: only its violations count as failures",
    )
    fuzz.add_argument(
        "--out",
        type=Path,
        metavar="FILE.toml",
        help="where to write a counterexample (default: fuzz-<engine>-<seed>.toml)",
    )
    fuzz.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="processes fuzzing at once, sharing the database (default 1: this one)",
    )
    fuzz.add_argument(
        "--database",
        metavar="DIR|redis://HOST:PORT/DB",
        help="Hypothesis example database: saves what is found, replays it first (default none)",
    )
    fuzz.add_argument("--json", action="store_true", help="machine-readable output")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def dispatch(args: argparse.Namespace) -> int:
    try:
        if args.command == "replay":
            return replay_command(args)
        if args.command == "fuzz":
            return fuzz_command(args)
        if args.verb == "list":
            return list_command(args)
        if args.verb == "run":
            return run_command(args)
        return check_command(args)
    except ScenarioError as exc:
        print(f"credsync {args.command}: {exc}", file=sys.stderr)
        return 2


# -- scenario list ------------------------------------------------------------------------


def list_command(args: argparse.Namespace) -> int:
    scenarios = ordered(list(builtin()))
    if args.json:
        rows = [
            {
                "name": s.name,
                "symptom": s.symptom,
                "description": s.description,
                "expect": list(s.expect),
                "breaks": s.breaks,
            }
            for s in scenarios
        ]
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="credsync scenarios")
    for column in ("name", "symptom", "description"):
        table.add_column(column)
    for s in scenarios:
        symptom = "-" if s.symptom is None else f"{s.symptom}: {SYMPTOMS[s.symptom]}"
        broken_by = "" if s.breaks == "legacy" else f" (broken by the {s.breaks} variant)"
        table.add_row(s.name, symptom, s.description + broken_by)
    Console().print(table)
    return 0


# -- scenario run -------------------------------------------------------------------------


def run_command(args: argparse.Namespace) -> int:
    names = sorted(builtin()) if args.all else args.names
    if not names:
        raise ScenarioError("name a scenario (credsync scenario list) or pass --all")
    scenarios = [load(name) for name in names] if not args.all else ordered(names)
    results = []
    console = Console(stderr=True)
    for scenario in scenarios:
        with _progress(console, f"{scenario.name} ({args.engine})", len(scenario.timeline)) as step:
            result = run(scenario, args.engine, args.seed, args.transport, on_step=step)
        results.append(result)
        suffix = "" if len(scenarios) == 1 else f"-{scenario.name}"
        if args.report is not None:
            _with_suffix(args.report, suffix).write_text(
                render_html(result.record()), encoding="utf-8"
            )
        if args.trace is not None:
            write_trace(_with_suffix(args.trace, suffix), result)
    if args.json:
        print(json.dumps([_summary(r) for r in results], indent=2))
    else:
        for result in results:
            for line in explain(result):
                print(line)
    return 1 if any(r.verdict == "FAIL" for r in results) else 0


def _with_suffix(path: Path, suffix: str) -> Path:
    return path.with_name(f"{path.stem}{suffix}{path.suffix}")


def _summary(result: Run) -> dict[str, Any]:
    record = result.record()
    del record["trace"]
    return record


def explain(result: Run) -> list[str]:
    """The verdict in words: which invariant broke, for whom, when and after what."""
    head = (
        f"{result.scenario.name} ({result.engine} engine, seed {result.seed}, {result.transport})"
    )
    if result.verdict == "PASS":
        return [f"PASS {head}: every invariant holds", first_rounds(result)]
    lines = [f"FAIL {head}", first_rounds(result)]
    if result.error is not None:
        lines.append(f"  the run stopped: {result.error}")
    firsts = [f for name in result.broken if (f := result.first(name)) is not None]
    for first in sorted(firsts, key=lambda f: f.at):
        name, v = first.violation.invariant, first.violation
        who = "" if v.user_id is None else f", user {v.user_id}"
        when = datetime.fromtimestamp(first.at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"  {name} broken for course {v.course_id}{who} at "
            f"{offset(first.at - result.started_at)} (virtual {when} UTC, {first.phase}): "
            f"{v.detail}"
        )
        faults = result.faults_before(first.at, v.course_id, limit=3)
        lines.append(f"    after faults: {'; '.join(faults) if faults else 'none'}")
    return lines


def first_rounds(result: Run) -> str:
    """How long each linked course's first round (a full one) took, in simulated hours:
    what a large course costs under Canvas's throttle."""
    sim = result.sim
    # The engine stamps a round with the time of its last Tick, which can be up to a
    # request's latency before the link when requests moved the clock between Ticks. The
    # harness now ticks before every answer that took time, so this should no longer
    # happen, but a figure that did would be read as a round taking negative time: hence max.
    took = [
        f"course {cid} "
        + (
            f"{max(0.0, sim.first_synced[cid] - at) / 3600:.2f} simulated hours"
            if cid in sim.first_synced
            else "never completed"
        )
        for cid, at in sorted(sim.linked_at.items())
    ]
    return f"  first full round: {'; '.join(took) if took else 'no course linked'}"


def _bar(console: Console, counter: str) -> Progress:
    """A progress bar on standard error; none when that is not a terminal (logs, CI)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn(counter),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


@contextmanager
def _progress(console: Console, label: str, total: int) -> Iterator[Callable[[int], None]]:
    with _bar(console, "{task.completed}/{task.total} actions") as progress:
        task = progress.add_task(label, total=total)
        yield lambda i: progress.update(task, completed=i + 1)


# -- scenario check -----------------------------------------------------------------------


def check_command(args: argparse.Namespace) -> int:
    """Each scenario against the engine that must break it (the legacy engine, or the variant
    its ``breaks`` names) and against the core: as expected when the first breaks at least
    what ``expect`` lists and the core holds everything."""
    scenarios = ordered(list(builtin()))
    rows = []
    console = Console(stderr=True)
    for scenario in scenarios:
        runs = {}
        for engine in (scenario.breaks, "core"):
            with _progress(console, f"{scenario.name} ({engine})", len(scenario.timeline)) as step:
                runs[engine] = run(scenario, engine, None, args.transport, on_step=step)
        breaker, core = runs[scenario.breaks], runs["core"]
        ok = (
            set(scenario.expect) <= breaker.broken
            and breaker.error is None
            and core.verdict == "PASS"
        )
        rows.append((scenario, breaker, core, ok))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "scenario": s.name,
                        "symptom": s.symptom,
                        "expect": list(s.expect),
                        "engine": s.breaks,
                        "broken": sorted(breaker.broken),
                        "engine_error": breaker.error,
                        "core": sorted(core.broken),
                        "core_error": core.error,
                        "as_expected": ok,
                    }
                    for s, breaker, core, ok in rows
                ],
                indent=2,
            )
        )
    else:
        _print_matrix(rows)
    return 0 if all(ok for *_, ok in rows) else 1


def _print_matrix(rows: list[tuple[Scenario, Run, Run, bool]]) -> None:
    table = Table(
        title="credsync scenario check: invariants broken by each engine",
        caption="the legacy engine, or the variant named, must break what each scenario "
        "expects; the core must hold everything",
    )
    # Names are never cut short (a test looks for them); the invariant lists wrap instead.
    table.add_column("scenario", no_wrap=True)
    table.add_column("symptom")
    table.add_column("engine", no_wrap=True)
    table.add_column("should break", min_width=len("leaderboard-matches-awards"))
    table.add_column("it breaks", min_width=len("✗ leaderboard-matches-awards"))
    table.add_column("core")
    table.add_column("", no_wrap=True)
    for scenario, breaker, core, ok in rows:
        shown = []
        expected_first = {name: i for i, name in enumerate(scenario.expect)}
        for name in sorted(breaker.broken, key=lambda n: (expected_first.get(n, 99), n)):
            shown.append(
                f"[bold red]✗ {name}[/]" if name in scenario.expect else f"[red]✗ {name}[/]"
            )
        for name in [n for n in scenario.expect if n not in breaker.broken]:
            shown.append(f"[yellow]✓ {name} (should break)[/]")
        if breaker.error is not None:
            shown.append(f"[red]{breaker.error}[/]")
        core_cell = (
            "[green]✓ all hold[/]"
            if core.verdict == "PASS"
            else "\n".join(f"[red]✗ {n}[/]" for n in sorted(core.broken))
            + (f"\n[red]{core.error}[/]" if core.error else "")
        )
        table.add_row(
            scenario.name,
            "-" if scenario.symptom is None else str(scenario.symptom),
            scenario.breaks,
            "\n".join(scenario.expect) or "-",
            "\n".join(shown) or "[green]✓ all hold[/]",
            core_cell,
            "[green]as expected[/]" if ok else "[bold red]NOT as expected[/]",
        )
    console = Console() if sys.stdout.isatty() else Console(width=170)
    console.print(table)
    failed = [s.name for s, *_, ok in rows if not ok]
    if failed:
        console.print(f"[bold red]NOT as expected:[/] {', '.join(failed)}")
    else:
        variants = any(s.breaks != "legacy" for s, *_ in rows)
        also = ", each engine variant breaks what its scenarios expect," if variants else ""
        console.print(
            f"[green]as expected:[/] the legacy engine reproduces every known symptom{also} "
            f"and the core holds every invariant in all {len(rows)} scenarios"
        )


# -- traces and replay ----------------------------------------------------------------------


def write_trace(path: Path, result: Run) -> None:
    """A JSON-lines recording: a header that can re-run the scenario, every trace entry,
    and the verdict."""
    record = result.record()
    header = {
        "format": TRACE_FORMAT,
        "scenario": result.scenario.source,
        "engine": result.engine,
        "seed": result.seed,
        "transport": result.transport,
    }
    verdict = {
        "verdict": record["verdict"],
        "error": record["error"],
        "violations": record["violations"],
    }
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(header) + "\n")
        for entry in record["trace"]:
            out.write(json.dumps(entry) + "\n")
        out.write(json.dumps(verdict) + "\n")


def replay_command(args: argparse.Namespace) -> int:
    try:
        lines = [json.loads(line) for line in args.trace.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise ScenarioError(f"{args.trace}: cannot read: {exc.strerror}") from exc
    except ValueError as exc:
        raise ScenarioError(f"{args.trace}: not a JSON-lines trace: {exc}") from exc
    if len(lines) < 2 or not isinstance(lines[0], dict) or lines[0].get("format") != TRACE_FORMAT:
        raise ScenarioError(f"{args.trace}: not a credsync trace (no {TRACE_FORMAT} header)")
    header, recorded, verdict = lines[0], lines[1:-1], lines[-1]
    scenario = Scenario.from_dict(header["scenario"], f"{args.trace}: scenario")
    if header.get("engine") not in RUNNABLE or header.get("transport") not in TRANSPORTS:
        raise ScenarioError(f"{args.trace}: unknown engine or transport in the header")
    result = run(scenario, header["engine"], header["seed"], header["transport"])
    record = result.record()
    divergence = next(
        (
            (i, want, got)
            for i, (want, got) in enumerate(zip(recorded, record["trace"], strict=False))
            if want != got
        ),
        None,
    )
    if divergence is None and len(recorded) != len(record["trace"]):
        n = min(len(recorded), len(record["trace"]))
        divergence = (n, recorded[n : n + 1], record["trace"][n : n + 1])
    same_verdict = (
        verdict.get("verdict") == record["verdict"]
        and verdict.get("violations") == record["violations"]
    )
    same = divergence is None and same_verdict
    if args.json:
        print(
            json.dumps(
                {
                    "trace": str(args.trace),
                    "entries": len(recorded),
                    "identical": same,
                    "divergence": None if divergence is None else list(divergence),
                    "recorded_verdict": verdict.get("verdict"),
                    **_summary(result),
                },
                indent=2,
            )
        )
    else:
        if divergence is not None:
            i, want, got = divergence
            print(f"DIVERGED at trace entry {i}: recorded {want}, replay gave {got}")
        elif not same_verdict:
            print("the trace is identical, but the verdict differs from the recording")
        else:
            print(f"replayed {len(recorded)} trace entries: identical to the recording")
        for line in explain(result):
            print(line)
        print(f"recorded verdict: {verdict.get('verdict')}; replay verdict: {record['verdict']}")
    if not same:
        return 3
    return 1 if result.verdict == "FAIL" else 0


# -- fuzz -----------------------------------------------------------------------------------


def fuzz_command(args: argparse.Namespace) -> int:
    """Run the state machine in seeded batches until the budget is spent or it fails.

    Each batch has its own Hypothesis seed derived from ``--seed``, so a run is repeatable
    batch by batch (how far it gets in the budget depends on the machine's speed); with
    ``--workers N`` the batches are shared out among N processes (see
    :mod:`scenarios.fuzzing`). On a failure Hypothesis shrinks it, and the shrunk run, which
    it replays last, is written as a scenario file and run once more to confirm it
    reproduces."""
    if args.database is not None:
        open_database(args.database)  # a bad one is refused before any worker starts
    target = Target(args.engine, args.symptom)
    plan = Plan(
        target, args.seed, args.workers, time.monotonic() + 60 * args.minutes, args.database
    )
    console = Console(stderr=True)
    with _bar(console, "{task.fields[examples]} examples") as progress:
        label = f"fuzzing the {args.engine} engine" + (
            "" if args.workers == 1 else f" ({args.workers} workers)"
        )
        task = progress.add_task(label, total=60 * args.minutes, examples=0)
        started = time.monotonic()

        def advance(examples: int) -> None:
            progress.update(task, completed=time.monotonic() - started, examples=examples)

        outcomes = fuzz(plan, advance)
    found = next((o for o in outcomes if o.ended == "found"), None)
    examples = sum(o.examples for o in outcomes)
    summary: dict[str, Any] = {
        "engine": args.engine,
        "seed": args.seed,
        "symptom": args.symptom,
        "database": args.database,
        "examples": examples,
        "workers": [
            {"worker": o.worker, "pid": o.pid, "examples": o.examples, "ended": o.ended}
            for o in sorted(outcomes, key=lambda o: o.worker)
        ],
        "found": found is not None,
    }
    per_worker = (
        []
        if args.workers == 1
        else [
            f"  worker {o.worker} (pid {o.pid}): {o.examples} examples, {_ENDED[o.ended]}"
            for o in sorted(outcomes, key=lambda o: o.worker)
        ]
    )
    if found is None:
        summary["message"] = "no invariant broke within the budget"
        _say(
            args,
            summary,
            [f"{examples} examples, no invariant broke: nothing to write", *per_worker],
        )
        return 0
    failure, recording = found.failure, found.recording
    assert failure is not None and recording is not None
    broken = sorted(set(_VIOLATION.findall(failure)))
    hunt = "" if args.symptom is None else f"-symptom{args.symptom}"
    out = args.out or Path(f"fuzz-{args.engine}{hunt}-{args.seed}.toml")
    command = (
        f"credsync fuzz --engine {args.engine} --seed {args.seed}"
        + ("" if args.symptom is None else f" --symptom {args.symptom}")
        + ("" if args.workers == 1 else f" --workers {args.workers}")
    )
    scenario_data = {
        "name": out.stem,
        "description": f"found by {command}: " + ", ".join(broken),
        **({} if args.symptom is None else {"symptom": args.symptom}),
        "seed": recording["seed"],
        "world": recording["world"],
        "expect": broken,
        "policy": recording["policy"],
        "faults": {**recording["faults"], "draws": recording["draws"]},  # type: ignore[dict-item]
        "timeline": recording["timeline"],
        **({"rate_limit": recording["rate_limit"]} if "rate_limit" in recording else {}),
    }
    comment = (
        f"# A counterexample found by `{command}`\n"
        f"# and shrunk by Hypothesis to {len(recording['timeline'])} actions "  # type: ignore[arg-type]
        "(plus the faults in\n# [faults]: the rates it drew, and every fault decision "
        "in `draws`, replayed in order).\n"
        f"# Run it: credsync scenario run {out} --engine {args.engine}\n"
        "# What Hypothesis reported:\n"
        + "".join(f"#   {line}\n" for line in failure.splitlines()[:12])
    )
    out.write_text(comment + tomli_w.dumps(scenario_data), encoding="utf-8")
    confirm = run(load(str(out)), args.engine)
    summary.update(
        {
            "broken": broken,
            "scenario_file": str(out),
            "actions": len(recording["timeline"]),  # type: ignore[arg-type]
            "reproduces": set(broken) <= confirm.broken,
        }
    )
    lines = [
        f"{examples} examples; Hypothesis found and shrank a failure: {', '.join(broken)}",
        *per_worker,
        *[f"  {line}" for line in failure.splitlines()[:6]],
        f"wrote {out} ({summary['actions']} actions); "
        + (
            "running it again reproduces the failure"
            if summary["reproduces"]
            else "WARNING: running it again did not reproduce the failure"
        ),
        f"run it: credsync scenario run {out} --engine {args.engine}",
    ]
    _say(args, summary, lines)
    return 1


def _say(args: argparse.Namespace, summary: dict[str, Any], lines: list[str]) -> None:
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for line in lines:
            print(line)
