"""Scenario files, the QA commands and replay: what QA runs, end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.stateful import run_state_machine_as_test

from scenarios.cli import main
from scenarios.scenario import (
    BREAKERS,
    INVARIANTS,
    RUNNABLE,
    Scenario,
    ScenarioError,
    builtin,
    load,
    run,
)
from scenarios.variants import VARIANTS
from simulators.harness.machine import SyncMachine

SMALL = """
name = "tiny"
description = "one grade, then an hour"
seed = 2
link = [101, 103]
expect = ["earned-implies-awarded"]

[faults]
transient_5xx = 1000
on = ["award"]

[[timeline]]
do = "grade"
course = 101
assignment = 7001
user = 1003
percent = 100

[[timeline]]
do = "wait"
hours = 1
"""


ARCHIVED = """
name = "archived"
description = "course 103's project badge class is archived for good"
link = [103]
expect = ["course-freshness"]
breaks = "aborts-on-missing-class"

[[timeline]]
do = "archive-badge-class"
badge = "Project 75%"

[[timeline]]
do = "wait"
hours = 2
"""
"""A flaw only an engine variant has: the legacy engine never reads the archived class, so it
keeps syncing the course; the variant gives up every round that reads it."""

NEW_FAMILIES = {
    "lagging-credentials": "trusts-one-read",
    "late-commit-after-restart": "trusts-one-read",
    "hand-award-mid-round": "checks-early",
    "shared-badge-class": "awards-shared-class-twice",
    "deleted-badge-class": "aborts-on-missing-class",
}
"""The scenarios of issue 13, one per family of Credentials behaviour, and the engine
variant each is there to catch."""


def write(tmp_path: Path, text: str, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_builtin_scenario_loads_and_names_known_invariants() -> None:
    names = set(builtin())
    assert {
        "course-without-assignments",
        "stalled-course",
        "earned-not-awarded",
        "enrollment-not-reflected",
        "leaderboard-halted",
        "update-now",
        "crash-restart",
        "semester",
        *NEW_FAMILIES,
    } <= names
    for name in names:
        scenario = load(name)
        assert scenario.name == name
        assert scenario.description
        assert scenario.expect and set(scenario.expect) <= set(INVARIANTS)
        assert scenario.breaks == NEW_FAMILIES.get(name, "legacy")
    assert {load(n).symptom for n in names} >= {1, 2, 3, 4, 5}


def test_a_scenario_file_runs_against_either_engine(tmp_path: Path) -> None:
    scenario = load(str(write(tmp_path, SMALL)))
    legacy, core = run(scenario, "legacy"), run(scenario, "core")
    # The legacy engine drops an award that failed; the core retries it once the
    # faults stop, so only the legacy engine breaks the promise.
    assert "earned-implies-awarded" in legacy.broken
    assert core.verdict == "PASS", core.found
    first = legacy.first("earned-implies-awarded")
    assert first is not None and first.violation.course_id == 101
    assert first.violation.user_id == 1003
    assert any("transient_5xx on IssueAssertion" in f for f in legacy.faults_before(first.at, 101))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\nworld = "huge"', "'world' must be small, semester or large"),
        ('name = "x"\ncolour = "red"', "unknown keys \\['colour'\\]"),
        ('description = "no name"', "'name' must be a non-empty string"),
        ('name = "x"\nexpect = ["no-bugs"]', "'expect' must list invariants"),
        ('name = "x"\nsymptom = 9', "'symptom' must be one of"),
        ('name = "x"\n[faults]\ngremlins = 3', "\\[faults\\] takes rates"),
        ('name = "x"\n[policy]\nspeed = 3', "\\[policy\\] takes"),
        ('name = "x"\n[[timeline]]\ndo = "dance"', "timeline\\[0\\]: unknown action 'dance'"),
        ('name = "x"\n[[courses]]\nstudents = -1', "'students' must be a whole number"),
        ('name = "x"\nlink = "some"', "'link' must be"),
        ('name = "x"\nbreaks = "core"', "'breaks' must name the legacy engine or a variant"),
        ('name = "x"\nbreaks = "trusts-two-reads"', "trusts-one-read, checks-early"),
        ('name = "x"\nbreaks = ["legacy"]', "not \\['legacy'\\]"),
        ("name = ", "not valid TOML"),
    ],
)
def test_a_bad_scenario_file_is_refused_with_its_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        load(str(write(tmp_path, text)))


def test_a_bad_action_stops_the_run_with_its_reason(tmp_path: Path) -> None:
    text = (
        'name = "x"\n[[timeline]]\n'
        'do = "grade"\ncourse = 101\nassignment = 1\nuser = 1003\npercent = 5'
    )
    result = run(load(str(write(tmp_path, text))), "core")
    assert result.verdict == "FAIL"
    assert result.error is not None and "timeline[0]" in result.error
    assert "course 101 has no assignment 1" in result.error


def test_scenario_run_names_the_invariant_course_user_time_and_faults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, SMALL)
    assert main(["scenario", "run", str(path), "--engine", "legacy"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL tiny (legacy engine, seed 2, memory)")
    assert "earned-implies-awarded broken for course 101, user 1003 at +" in out
    assert "after faults: t=+" in out and "transient_5xx on IssueAssertion" in out
    assert main(["scenario", "run", str(path), "--engine", "core"]) == 0
    out = capsys.readouterr().out
    assert "PASS tiny (core engine" in out
    assert re.search(r"first full round: course 101 0\.\d\d simulated hours", out)


def test_scenario_run_json_and_unknown_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, SMALL)
    assert main(["scenario", "run", str(path), "--engine", "legacy", "--json"]) == 1
    (record,) = json.loads(capsys.readouterr().out)
    assert record["verdict"] == "FAIL" and record["engine"] == "legacy"
    assert any(v["invariant"] == "earned-implies-awarded" for v in record["violations"])
    assert main(["scenario", "run", "no-such-scenario"]) == 2
    assert "no scenario 'no-such-scenario'" in capsys.readouterr().err


def test_a_trace_replays_to_the_same_verdict_and_a_tampered_one_diverges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, trace = write(tmp_path, SMALL), tmp_path / "t.jsonl"
    report = tmp_path / "r.html"
    assert (
        main(
            [
                "scenario",
                "run",
                str(path),
                "--engine",
                "legacy",
                "--trace",
                str(trace),
                "--report",
                str(report),
            ]
        )
        == 1
    )
    assert "first-violation" in report.read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["replay", str(trace)]) == 1
    out = capsys.readouterr().out
    assert "identical to the recording" in out
    assert "recorded verdict: FAIL; replay verdict: FAIL" in out

    lines = trace.read_text(encoding="utf-8").splitlines()
    entry = json.loads(lines[5])
    entry["detail"] += " (edited)"
    lines[5] = json.dumps(entry)
    trace.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["replay", str(trace)]) == 3
    assert "DIVERGED at trace entry 4" in capsys.readouterr().out

    trace.write_text("not json\n", encoding="utf-8")
    assert main(["replay", str(trace)]) == 2


def test_scenario_list_shows_every_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(builtin())
    assert all(r["description"] for r in rows)
    assert {r["name"]: r["breaks"] for r in rows if r["breaks"] != "legacy"} == NEW_FAMILIES


def test_fuzz_finds_a_legacy_bug_and_writes_a_scenario_that_reproduces_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "found.toml"
    assert main(["fuzz", "--engine", "legacy", "--seed", "0", "--out", str(out), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["found"] and summary["reproduces"]
    scenario = load(str(out))
    assert set(scenario.expect) == set(summary["broken"])
    assert set(scenario.expect) <= run(scenario, "legacy").broken
    assert main(["scenario", "run", str(out), "--engine", "legacy"]) == 1


def test_a_fuzz_recording_replays_step_for_step(tmp_path: Path) -> None:
    """A scenario written from a machine recording (actions plus fault draws) replays the
    exact run: here a recorded run with faults is rebuilt from its recording."""
    runs: list[tuple[dict[str, object], list[object]]] = []

    class Keep(SyncMachine):
        def teardown(self) -> None:
            super().teardown()
            runs.append(
                (self.recording(), [(e.kind, e.course_id, e.detail) for e in self.sim.trace])
            )

    run_state_machine_as_test(
        hypothesis_seed(5)(Keep),
        settings=settings(
            max_examples=5,
            stateful_step_count=15,
            database=None,
            derandomize=False,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            deadline=None,
        ),
    )
    assert runs
    for recording, trace in runs:
        data = {
            "name": "replayed",
            "seed": recording["seed"],
            "world": recording["world"],
            "policy": recording["policy"],
            "faults": {**recording["faults"], "draws": recording["draws"]},  # type: ignore[dict-item]
            "timeline": recording["timeline"],
            **({"rate_limit": recording["rate_limit"]} if "rate_limit" in recording else {}),
        }
        replayed = run(Scenario.from_dict(data, "recording"), "core")
        assert replayed.error is None
        assert [(e.kind, e.course_id, e.detail) for e in replayed.sim.trace] == trace


def test_scenario_check_prints_the_matrix_and_holds(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's main job: legacy reproduces each known symptom, the core holds."""
    assert main(["scenario", "check"]) == 0
    out = capsys.readouterr().out
    for name in builtin():
        assert name in out
    assert "as expected: the legacy engine reproduces every known symptom" in out
    assert "NOT as expected" not in out
    for name, variant in NEW_FAMILIES.items():  # issue 13: each is held against its variant
        row = next(line for line in out.splitlines() if name in line)
        assert variant in row and "as expected" in row, row


def test_scenario_check_fails_when_the_legacy_engine_does_not_break_what_is_expected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A healthy scenario (no faults, no activity) expecting duplicate awards: the legacy
    engine cannot break that, so the matrix is not as expected."""
    text = 'name = "calm"\ndescription = "nothing happens"\nlink = [103]\n'
    text += 'expect = ["no-duplicate-awards"]\n[[timeline]]\ndo = "wait"\nhours = 1\n'
    monkeypatch.setattr("scenarios.qa.builtin", lambda: {"calm": write(tmp_path, text)})
    monkeypatch.setattr("scenarios.scenario.builtin", lambda: {"calm": tmp_path / "tiny.toml"})
    assert main(["scenario", "check"]) == 1
    assert "NOT as expected: calm" in capsys.readouterr().out
    assert main(["scenario", "check", "--json"]) == 1
    (row,) = json.loads(capsys.readouterr().out)
    assert row["scenario"] == "calm" and not row["as_expected"]
    assert row["expect"] == ["no-duplicate-awards"] and row["core"] == []


def test_a_variant_engine_runs_by_name_and_an_unknown_engine_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--engine`` takes each variant of :mod:`scenarios.variants` by its name, so QA can
    watch a scenario break the way the core once did; a name that is no engine is refused
    with the choices listed, by the command line and by :func:`run` alike. A variant's run
    replays like any other."""
    assert list(RUNNABLE) == ["core", "legacy", *VARIANTS]
    assert ("legacy", *VARIANTS) == BREAKERS
    path, trace = write(tmp_path, ARCHIVED), tmp_path / "v.jsonl"
    variant = ["--engine", "aborts-on-missing-class"]
    assert main(["scenario", "run", str(path), *variant, "--trace", str(trace)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL archived (aborts-on-missing-class engine, seed 1, memory)")
    assert "course-freshness broken for course 103 at +" in out
    assert main(["replay", str(trace)]) == 1
    assert "identical to the recording" in capsys.readouterr().out
    assert main(["scenario", "run", str(path), "--engine", "legacy"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["scenario", "run", str(path), "--engine", "trusts-two-reads"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'trusts-two-reads'" in err
    assert all(repr(name) in err for name in RUNNABLE)
    with pytest.raises(ScenarioError, match="no engine 'nope'; choose from core, legacy, "):
        run(load(str(path)), "nope")


def test_scenario_check_holds_a_scenario_against_the_engine_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``breaks`` names the engine the matrix runs beside the core: the variant breaks what
    the scenario expects and the core holds, so the row is as expected. The legacy engine
    never reads the archived class, so the same scenario without ``breaks`` is not."""
    path = write(tmp_path, ARCHIVED, "archived.toml")
    monkeypatch.setattr("scenarios.qa.builtin", lambda: {"archived": path})
    monkeypatch.setattr("scenarios.scenario.builtin", lambda: {"archived": path})
    assert main(["scenario", "check"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "archived" in line)
    assert "aborts-on-missing-class" in row and "as expected" in row
    assert "each engine variant breaks what its scenarios expect" in out
    assert main(["scenario", "check", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["engine"] == "aborts-on-missing-class" and row["as_expected"]
    assert "course-freshness" in row["broken"] and row["engine_error"] is None
    assert row["core"] == [] and row["core_error"] is None

    path.write_text(ARCHIVED.replace('breaks = "aborts-on-missing-class"\n', ""), "utf-8")
    assert main(["scenario", "check", "--json"]) == 1
    (row,) = json.loads(capsys.readouterr().out)
    assert row["engine"] == "legacy" and row["broken"] == [] and not row["as_expected"]


@pytest.mark.parametrize("transport", ["asgi", "http"])
def test_a_scenario_runs_the_same_over_http(transport: str) -> None:
    """--transport asgi|http carries the same requests through the FastAPI fakes (in
    process, or over loopback sockets): the same faults, trace and verdict as in memory."""
    scenario = load("leaderboard-halted")
    memory, http = run(scenario, "legacy"), run(scenario, "legacy", transport=transport)
    assert http.error is None
    assert http.found == memory.found
    assert http.sim.trace == memory.sim.trace


def test_fuzz_can_hunt_one_symptom(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "one.toml"
    args = ["fuzz", "--engine", "legacy", "--symptom", "1", "--out", str(out), "--json"]
    assert main(args) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["symptom"] == 1 and summary["broken"] == ["course-freshness"]
    scenario = load(str(out))
    assert scenario.symptom == 1 and scenario.expect == ("course-freshness",)
