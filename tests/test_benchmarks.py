"""The benchmarks' own machinery: the timing helper, goals, the random walk's draws, and
that ``python -m benchmarks`` writes well-formed JSON.

``benchmarks/`` lives in the source tree only (it is not packaged, see ``tox.ini``), so
the repository root is put on ``sys.path`` here. No test asserts a wall-clock time: the
timing helper is driven by a fake clock.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import __main__ as bench_main  # noqa: E402
from benchmarks import core, fuzzing, measure, serving  # noqa: E402


class FakeClock:
    """``time.perf_counter`` for the helper: moves only when a thunk says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def case(clock: FakeClock, costs: list[float], log: list[str], name: str) -> measure.Case:
    """Each call prepares one run (logged) whose thunk costs the next of ``costs``."""
    pending = iter(costs)

    def prepare() -> Callable[[], object]:
        cost = next(pending)
        log.append(f"prepare {name}")

        def thunk() -> None:
            log.append(f"run {name}")
            clock.now += cost

        return thunk

    return prepare


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(measure.time, "perf_counter", fake)
    return fake


@pytest.fixture
def collections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stands in for ``gc.collect`` (slow in a big test process), logging each call."""
    log: list[str] = []
    monkeypatch.setattr(measure.gc, "collect", lambda: log.append("collect"))
    return log


def test_measure_interleaves_and_takes_medians(clock: FakeClock, collections: list[str]) -> None:
    log = collections  # one log: garbage is collected after preparing, before each run
    subject = case(clock, [3.0, 1.0, 2.0], log, "subject")
    baseline = case(clock, [1.0, 9.0, 1.0], log, "baseline")
    result = measure.measure(subject, baseline, repeats=3)
    assert result == measure.Comparison(subject=2.0, baseline=1.0, repeats=3)
    assert result.ratio == 2.0
    runs = [line for line in log if line.startswith("run")]
    assert log.count("collect") == 6
    assert runs == ["run baseline", "run subject"] * 3
    # Preparation happens before its own run, never inside the other side's timing.
    assert log[:3] == ["prepare baseline", "collect", "run baseline"]


def test_measure_needs_a_repeat(clock: FakeClock, collections: list[str]) -> None:
    log: list[str] = []
    with pytest.raises(ValueError, match="at least 1"):
        measure.measure(case(clock, [], log, "s"), case(clock, [], log, "b"), repeats=0)
    assert log == []


@pytest.mark.parametrize(
    ("goal", "value", "met"),
    [
        (measure.Goal("<=", 4), 4.0, True),
        (measure.Goal("<=", 4), 4.01, False),
        (measure.Goal(">=", 0.25), 0.25, True),
        (measure.Goal(">=", 0.25), 0.24, False),
        (measure.Goal("<", 10, " s"), 10.0, False),
    ],
)
def test_goals_are_met_exactly_at_their_bound(goal: measure.Goal, value: float, met: bool) -> None:
    assert goal.met(value) is met
    assert measure.Result("x", "x", value, goal).met is met


def test_a_result_without_goal_is_neither_met_nor_missed() -> None:
    result = measure.Result("6b", "ratio only", 0.5, None)
    assert result.met is None
    assert result.to_json()["goal"] is None


def test_unknown_goal_operator_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown goal operator"):
        measure.Goal("==", 1)


def test_the_random_walk_draws_within_each_strategy() -> None:
    rng = random.Random(0)
    assert {fuzzing.sample(st.integers(2, 4), rng) for _ in range(200)} == {2, 3, 4}
    assert {fuzzing.sample(st.sampled_from(["a", "b"]), rng) for _ in range(200)} == {"a", "b"}
    assert {fuzzing.sample(st.booleans(), rng) for _ in range(200)} == {False, True}

    @st.composite
    def pair(draw: st.DrawFn) -> tuple[int, int]:
        return draw(st.integers(0, 1)), draw(st.integers(5, 5))

    assert {fuzzing.sample(pair(), rng) for _ in range(100)} == {(0, 5), (1, 5)}


def test_the_random_walk_refuses_a_strategy_it_cannot_draw_uniformly() -> None:
    with pytest.raises(TypeError, match="cannot draw"):
        fuzzing.sample(st.text(), random.Random(0))


def test_main_prints_the_table_and_writes_well_formed_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI's plumbing, with stand-in figures (the real ones take minutes): ``--only``
    selects, ``--quick`` reaches the figures, and every result lands in the JSON."""
    asked: list[bool] = []

    def cheap(quick: bool) -> list[measure.Result]:
        asked.append(quick)
        return [
            measure.Result("9a", "met", 1.5, measure.Goal("<=", 2)),
            measure.Result("9b", "missed", 3.0, measure.Goal("<=", 2)),
            measure.Result("9c", "no goal", 0.5, None),
        ]

    def never(quick: bool) -> list[measure.Result]:
        raise AssertionError("--only did not leave this group out")

    monkeypatch.setattr(bench_main, "FIGURES", {"9": cheap, "10": never})
    out = tmp_path / "bench.json"
    assert bench_main.main(["--quick", "--only", "9", "--json", str(out)]) == 0
    assert asked == [True]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["quick"] is True
    assert report["errors"] == {}
    assert list(report["seconds_per_group"]) == ["9"]
    assert [(r["figure"], r["met"], r["goal"]) for r in report["results"]] == [
        ("9a", True, "<= 2x"),
        ("9b", False, "<= 2x"),
        ("9c", None, None),
    ]
    table = capsys.readouterr().out
    assert all(figure in table for figure in ("9a", "9b", "9c"))


def test_a_failing_group_is_reported_and_the_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(quick: bool) -> list[measure.Result]:
        raise RuntimeError("the fake would not start")

    def fine(quick: bool) -> list[measure.Result]:
        return [measure.Result("9a", "fine", 1.0, measure.Goal("<=", 2))]

    monkeypatch.setattr(bench_main, "FIGURES", {"8": broken, "9": fine})
    out = tmp_path / "bench.json"
    assert bench_main.main(["--json", str(out)]) == 1
    report = json.loads(out.read_text(encoding="utf-8"))
    assert [r["figure"] for r in report["results"]] == ["9a", "time"]
    assert report["errors"] == {"8": "RuntimeError: the fake would not start"}


@pytest.mark.parametrize(("quick", "budget"), [(True, "< 120 s"), (False, "< 600 s")])
def test_a_run_of_every_group_is_judged_against_its_time_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick: bool, budget: str
) -> None:
    """The budget row times the whole run (here a stand-in clock: 30 s per group and
    400 s for the slow one) and is left out when ``--only`` picks groups."""
    ticks = iter([0.0, 0.0, 30.0, 30.0, 430.0, 430.0])
    monkeypatch.setattr(bench_main.time, "perf_counter", lambda: next(ticks))

    def fine(quick: bool) -> list[measure.Result]:
        return [measure.Result("9a", "fine", 1.0, measure.Goal("<=", 2))]

    monkeypatch.setattr(bench_main, "FIGURES", {"8": fine, "9": fine})
    out = tmp_path / "bench.json"
    assert bench_main.main([*(["--quick"] if quick else []), "--json", str(out)]) == 0
    (row,) = [r for r in json.loads(out.read_text())["results"] if r["figure"] == "time"]
    assert (row["value"], row["goal"], row["met"]) == (430.0, budget, not quick)
    assert row["details"] == {"seconds_per_group": {"8": 30.0, "9": 400.0}}


def test_only_names_a_known_group() -> None:
    with pytest.raises(SystemExit):
        bench_main.main(["--only", "no-such-figure"])


def test_figures_1_to_3_replay_what_the_fakes_serve_for_a_synced_course() -> None:
    """The group is seeded through the fake's own API rather than synced; the recording
    checks that the engine's full round then writes nothing and, with ``verify``, that a
    resync reads the very same pages, which the figures replay into the state it left."""
    rec = core.record(12, 3, verify=True)
    assert rec.submissions == 36
    for case in (core.full_round(rec), core.incremental_round(rec), core.scores_floor(rec)):
        case()()  # each replayed round completes (it asserts so itself)


def test_a_seeded_group_that_a_sync_would_change_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(core, "seed_credentials", lambda world, course_id: None)
    with pytest.raises(AssertionError, match="not what a sync leaves"):
        core.record(12, 3)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's")
def test_peak_memory_is_the_child_s_own_not_the_parent_s() -> None:
    """Linux carries ``ru_maxrss`` over ``execve``: a benchmark process grown to a gigabyte
    once made figure 7b report 1.15 GB for a 100 MB child. With 400 MB touched here, the
    child's figure must stay far below it."""
    ballast = bytearray(400 * 1024 * 1024)
    ballast[::4096] = b"\1" * len(range(0, len(ballast), 4096))  # touch every page
    result = serving.peak_memory()
    assert result.value < 300, result
    del ballast
