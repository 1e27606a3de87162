"""Fuzzing at scale: workers that share one Hypothesis example database, and a failure one
of them saved replayed by plain ``pytest`` in another process.

Each replay test starts from an empty database, shows that the replay finds nothing there,
lets one ``credsync fuzz`` process (the legacy engine, hunting symptom 1, found in seconds)
find and save a failure, and then runs ``pytest tests/test_fuzz_replay.py`` in another
process: it must fail, in the reuse phase alone, with the invariant the fuzzer reported.
So the saved example, and nothing generated, is what fails it. The directory database
and a real ``redis-server`` on loopback are both tested: the one ``.ci/run`` installs and
starts (``CREDSYNC_REDIS_URL``), or else one this file starts on a free port; a missing
server fails the test under ``CI`` and skips it only on a developer's machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest
from collections.abc import Iterator
from pathlib import Path

import pytest

from scenarios.cli import main
from scenarios.fuzzing import Plan, Target, hunt, open_database, replay

TESTS = Path(__file__).resolve().parent
BROKEN = re.compile(r"^E\s+(?:AssertionError: )?([a-z-]+) broken in course", re.MULTILINE)
LEGACY_SYMPTOM_1 = ["--engine", "legacy", "--symptom", "1"]


def _redis_server() -> str:
    """Its path: a CI machine must have it, a developer's may not."""
    path = shutil.which("redis-server")
    if path is None:
        message = "redis-server is not installed (apt-get install redis-server; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """The server ``.ci/run`` started (``CREDSYNC_REDIS_URL``), emptied first; elsewhere a
    fresh ``redis-server`` on a free loopback port, persisting nothing."""
    started = os.environ.get("CREDSYNC_REDIS_URL")
    if started is not None:
        import redis

        redis.Redis.from_url(started).flushdb()
        yield started
        return
    server = _redis_server()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    args += ["--appendonly", "no", "--dir", str(tmp_path)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        # Wait by reading its log, not by sleeping: it says when it accepts connections.
        for line in process.stdout:
            if "Ready to accept connections" in line:
                break
        else:
            pytest.fail(f"redis-server exited with {process.wait()} before it was ready")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait()


def _fuzz(tmp_path: Path, *args: str) -> dict[str, object]:
    """``credsync fuzz`` in a process of its own; its JSON summary."""
    command = [sys.executable, "-m", "scenarios.cli", "fuzz", *args, "--json"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    summary: dict[str, object] = json.loads(done.stdout)
    return summary


def _replay_in_pytest(tmp_path: Path, database: str) -> subprocess.CompletedProcess[str]:
    """Plain pytest on the replay tests, in another process, reading ``database``."""
    command = [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider"]
    command += [str(TESTS / "test_fuzz_replay.py"), "-q", "-rfs"]
    env = {**os.environ, "CREDSYNC_DATABASE": database}
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)


def _saved_by_one_process_replayed_by_another(tmp_path: Path, database: str) -> None:
    with pytest.raises(unittest.SkipTest, match="no examples"):
        replay(Target("legacy", 1), open_database(database))  # empty: nothing to replay

    found = _fuzz(tmp_path, *LEGACY_SYMPTOM_1, "--database", database)
    assert found["found"] and found["broken"] == ["course-freshness"]

    replayed = _replay_in_pytest(tmp_path, database)
    assert replayed.returncode == 1, replayed.stdout
    assert "1 failed, 11 skipped" in replayed.stdout
    assert "FAILED" in replayed.stdout and "[legacy-symptom1]" in replayed.stdout
    assert sorted(set(BROKEN.findall(replayed.stdout))) == found["broken"]
    # Hypothesis printed the saved steps: the reuse phase ran the example the fuzzer shrank.
    assert "Falsifying example" in replayed.stdout and "state = LegacyMachine()" in replayed.stdout


def test_a_failure_saved_in_a_directory_replays_in_plain_pytest(tmp_path: Path) -> None:
    _saved_by_one_process_replayed_by_another(tmp_path, str(tmp_path / "examples"))


def test_a_failure_saved_in_redis_replays_in_plain_pytest(tmp_path: Path, redis_url: str) -> None:
    _saved_by_one_process_replayed_by_another(tmp_path, redis_url)


def test_two_workers_run_in_two_processes_and_the_first_failure_stops_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two worker processes besides this one, each reporting how it ended. With a ten-minute
    budget, none spent it: each found the failure or was stopped by the other's. Symptom 1
    shows in every example, so in practice both find it in their first batch; that a found
    failure stops a worker that has not found one is shown (deterministically, in one
    process) by the next test."""
    monkeypatch.chdir(tmp_path)
    database = str(tmp_path / "examples")
    args = ["fuzz", *LEGACY_SYMPTOM_1, "--workers", "2", "--minutes", "10"]
    assert main([*args, "--database", database, "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    workers = summary["workers"]
    assert [w["worker"] for w in workers] == [0, 1]
    assert len({w["pid"] for w in workers} | {os.getpid()}) == 3
    assert {w["ended"] for w in workers} <= {"found", "stopped"}
    assert "found" in {w["ended"] for w in workers}
    assert summary["examples"] == sum(w["examples"] for w in workers) > 0
    assert [p.name for p in tmp_path.glob("*.toml")] == ["fuzz-legacy-symptom1-0.toml"]
    assert summary["reproduces"]


def _plan(deadline: float) -> Plan:
    return Plan(Target("legacy", 1), seed=0, workers=2, deadline=deadline, database=None)


def test_the_worker_that_finds_a_failure_stops_the_others_before_their_next_batch() -> None:
    """In one process, so that it is deterministic: worker 0 finds symptom 1 in its first
    batch and sets the shared event; worker 1, starting after, runs nothing."""
    stop = threading.Event()
    seen: list[int] = []
    first = hunt(_plan(time.monotonic() + 600), 0, stop, seen.append)
    assert first.ended == "found" and stop.is_set()
    assert first.failure is not None and "course-freshness broken" in first.failure
    assert seen[-1] == first.examples > 0
    other = hunt(_plan(time.monotonic() + 600), 1, stop, seen.append)
    assert (other.ended, other.examples, other.failure) == ("stopped", 0, None)


def test_a_worker_starts_no_batch_after_the_deadline() -> None:
    outcome = hunt(_plan(time.monotonic()), 1, threading.Event(), lambda n: None)
    assert (outcome.ended, outcome.examples, outcome.failure) == ("budget", 0, None)


@pytest.mark.parametrize(
    ("database", "reason"),
    [
        ("ftp://example.invalid/db", "give a directory or a redis://HOST:PORT/DB URL"),
        ("redis://127.0.0.1:1/0", "cannot use this Redis"),
        (str(TESTS / "test_fuzz_scale.py"), "exists and is not a directory"),
    ],
    ids=["scheme", "no-server", "a-file"],
)
def test_a_bad_database_is_refused_before_any_work(
    database: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fuzz", *LEGACY_SYMPTOM_1, "--database", database]) == 2
    assert reason in capsys.readouterr().err


@pytest.mark.parametrize("workers", ["0", "two"])
def test_a_bad_worker_count_is_refused(workers: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["fuzz", *LEGACY_SYMPTOM_1, "--workers", workers])
    assert exited.value.code == 2
    assert "argument --workers" in capsys.readouterr().err
