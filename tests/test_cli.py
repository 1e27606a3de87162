"""The ``credsync`` command line: verdicts, exit codes and replayability."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mutants import NeverRemovesMembers

import scenarios.cli as cli
from simulators.harness.simulation import Simulation


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    return code, capsys.readouterr().out


def test_simulate_passes_and_reports_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "simulate", "--seed", "3", "--days", "1", "--json")
    report = json.loads(out)
    assert code == 0 and report["verdict"] == "PASS" and report["violations"] == []
    assert [c["course_id"] for c in report["courses"]] == [101, 102, 103]
    assert report["requests"] > 0 and report["canvas_changes"] > 0


def test_the_same_seed_replays_the_same_run(capsys: pytest.CaptureFixture[str]) -> None:
    first = run(capsys, "simulate", "--seed", "5", "--days", "1", "--json")
    second = run(capsys, "simulate", "--seed", "5", "--days", "1", "--json")
    other = run(capsys, "simulate", "--seed", "6", "--days", "1", "--json")
    assert first == second and first != other


def test_a_broken_invariant_exits_1_and_names_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Simulation:
        return Simulation(*args, new_engine=NeverRemovesMembers, **kwargs)

    monkeypatch.setattr(cli, "Simulation", broken)
    code, out = run(capsys, "simulate", "--seed", "1", "--days", "3", "--faults", "none")
    assert code == 1
    assert "members-match-enrollments broken in course" in out and "FAIL" in out


def test_human_output_says_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "simulate", "--seed", "2", "--days", "1", "--faults", "none")
    assert code == 0 and "PASS: every invariant holds" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "--days", "-1"], "--days must be zero or more"),
        (["simulate", "--faults", "lots"], "invalid choice: 'lots'"),
        ([], "required: command"),
    ],
)
def test_bad_arguments_are_refused_clearly(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


SYNC_ARGS = ("sync", "--canvas", "http://127.0.0.1:1", "--credentials", "http://127.0.0.1:2")


def test_sync_takes_its_tokens_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens on the command line show in the process list; the environment keeps them out."""
    seen: list[Any] = []
    monkeypatch.setattr(cli, "run_sync_command", lambda args: seen.append(args) or 0)
    monkeypatch.setenv("CREDSYNC_CANVAS_TOKEN", "canvas-from-env")
    monkeypatch.setenv("CREDSYNC_CREDENTIALS_TOKEN", "credentials-from-env")
    assert cli.main([*SYNC_ARGS, "--links", "links.json"]) == 0
    assert (seen[0].canvas_token, seen[0].credentials_token) == (
        "canvas-from-env",
        "credentials-from-env",
    )
    cli.main([*SYNC_ARGS, "--links", "links.json", "--canvas-token", "flag-wins"])
    assert seen[1].canvas_token == "flag-wins"


def test_sync_without_a_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CREDSYNC_CANVAS_TOKEN", raising=False)
    monkeypatch.setenv("CREDSYNC_CREDENTIALS_TOKEN", "credentials-from-env")
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*SYNC_ARGS, "--links", "links.json"])
    assert exit_info.value.code == 2
    assert "--canvas-token" in capsys.readouterr().err
