"""No token or secret reaches an artifact: traces, HTML reports, the sync's state file, the
commands' standard output and error, and every log line of every logger at DEBUG.

The run is a real one over loopback sockets: a scenario through the production adapter
(``--transport http``) whose Canvas tokens expire and are refreshed mid-run, with injected
``token_expiry`` faults answered 401 and followed by a refresh grant; then ``credsync sync
--once --state FILE`` against servers started here, once with live tokens and once with
an expired one (a 401 on every Canvas read; the command takes static tokens only, so the
refresh grants are the scenario's, made by the same ``HttpAdapter``). Every credential the
worlds' token stores ever minted or held (access and refresh tokens, client secrets,
passwords) is then searched for, byte for byte, in everything the runs produced.

``credsync serve`` is the one place tokens are printed, on purpose, so that a person can
use them; it is not run here. ``credsync fuzz`` is left out: its output file is a scenario
built from the state machine's actions, which carry no credential, and a run that finds
a counterexample costs about 20 s.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
import uvicorn

import adapter.tokens
from adapter.links import links_to_json
from scenarios.cli import main
from simulators import ApiRequest, FaultPlan, FaultRates, SeededChoices, Service, Services, World
from simulators.http.serve import run_servers
from simulators.tokens import TokenStore

CHURN = """
name = "token-churn"
description = "Canvas tokens outlive their hour and die early: refresh grants and 401s"
seed = 3
link = [103]

[[timeline]]
do = "faults"
token_expiry = 300

[[timeline]]  # hours, so that full rounds read Credentials often enough to meet 401s there
do = "wait"
hours = 12

[[timeline]]
do = "faults-off"
"""


@pytest.fixture
def stores(monkeypatch: pytest.MonkeyPatch) -> list[TokenStore]:
    """Every token store created from here on, so the secrets of worlds built inside the
    commands under test can be collected afterwards."""
    created: list[TokenStore] = []
    original = TokenStore.__init__

    def recording(self: TokenStore, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        created.append(self)

    monkeypatch.setattr(TokenStore, "__init__", recording)
    return created


@pytest.fixture
def every_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG (httpx, httpcore, uvicorn, asyncio, ours), tracebacks
    included. uvicorn sets its loggers' levels whenever a server is configured; that is
    switched off, so its DEBUG lines are captured too, and so is its access log (every
    request line), which ``credsync serve`` leaves off."""
    monkeypatch.setattr(uvicorn.Config, "configure_logging", lambda self: None)
    caplog.set_level(logging.DEBUG)
    for name in [*logging.root.manager.loggerDict, "httpx", "httpcore", "uvicorn"]:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def leaks(artifacts: Mapping[str, bytes], secrets: Iterable[str]) -> list[tuple[str, str]]:
    """(artifact, secret) for every secret found anywhere in an artifact."""
    return sorted(
        (name, secret)
        for name, data in artifacts.items()
        for secret in secrets
        if secret.encode() in data
    )


def files_under(root: Path) -> dict[str, bytes]:
    """Every file a run wrote, whatever its format (JSON, SQLite and its journals...)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def secrets_of(stores: Iterable[TokenStore]) -> frozenset[str]:
    return frozenset().union(*(store.secrets() for store in stores))


def run_scenario(root: Path) -> None:
    scenario = root / "churn.toml"
    scenario.write_text(CHURN, encoding="utf-8")
    trace, report = root / "churn.jsonl", root / "churn.html"
    args = ["scenario", "run", str(scenario), "--transport", "http"]
    assert main([*args, "--trace", str(trace), "--report", str(report)]) == 0


def run_sync_twice(root: Path) -> int:
    """``credsync sync --once`` with live tokens, then again once the Canvas token has
    expired; returns the second run's exit code."""
    world, rules = World.small(5)
    links = [world.link_course(course_id, r) for course_id, r in sorted(rules.items())]
    (root / "links.json").write_text(links_to_json(links), encoding="utf-8")
    services = Services(world, FaultPlan(FaultRates.none(), SeededChoices(5)))
    canvas_token = world.tokens.issue(Service.CANVAS, ttl=math.inf)
    credentials_token = world.tokens.issue(Service.CREDENTIALS)
    with run_servers(world, services) as servers:
        args = [
            "sync",
            "--canvas",
            servers.canvas_url,
            "--canvas-token",
            canvas_token,
            "--credentials",
            servers.credentials_url,
            "--credentials-token",
            credentials_token,
            "--links",
            str(root / "links.json"),
            "--once",
            "--state",
            str(root / "state"),
        ]
        assert main(args) == 0
        world.tokens.expire(canvas_token)
        return main(args)


def artifacts_of(
    root: Path, capsys: pytest.CaptureFixture[str], logs: pytest.LogCaptureFixture
) -> dict[str, bytes]:
    out = capsys.readouterr()
    return {
        **files_under(root),
        "stdout": out.out.encode(),
        "stderr": out.err.encode(),
        "logs": logs.text.encode(),
    }


def test_no_token_or_secret_reaches_any_artifact(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    every_log: pytest.LogCaptureFixture,
    stores: list[TokenStore],
) -> None:
    run_scenario(tmp_path)
    assert run_sync_twice(tmp_path) == 1  # the expired Canvas token fails every course
    artifacts = artifacts_of(tmp_path, capsys, every_log)
    secrets = secrets_of(stores)
    assert leaks(artifacts, secrets) == []
    # The run did what makes a leak likely, and the capture saw it:
    minted = {kind: sum(kind in s for s in secrets) for kind in ("canvas-token", "refresh")}
    assert minted["canvas-token"] > 10 and minted["refresh"] > 10  # grants mid-run
    assert "credsync-sim-secret" in secrets  # the developer key's client secret
    assert b"RequestFailed(auth)" in artifacts["churn.jsonl"]  # 401s met mid-run
    assert {"churn.jsonl", "churn.html", "links.json"} <= set(artifacts)
    assert any(name.startswith("state") for name in artifacts)
    logged = {record.name.split(".")[0] for record in every_log.records}
    assert {"httpx", "httpcore"} <= logged
    assert b"POST http://127.0.0.1:" in artifacts["logs"]  # httpx logged the grants' URLs


def test_the_search_finds_a_token_in_a_log_a_file_or_an_output(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    every_log: pytest.LogCaptureFixture,
    stores: list[TokenStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deliberately leaky adapter (it logs the header it sends) and two planted copies
    are each caught, so a clean result above means something."""
    original = adapter.tokens.OAuthToken.headers

    def logged_headers(self: adapter.tokens.OAuthToken) -> dict[str, str]:
        headers = original(self)
        logging.getLogger("adapter.http").debug("sending %s", headers)
        return headers

    monkeypatch.setattr(adapter.tokens.OAuthToken, "headers", logged_headers)
    run_sync_twice(tmp_path)
    secrets = secrets_of(stores)
    canvas_token = min(s for s in secrets if s.startswith("canvas-token"))
    (tmp_path / "notes.txt").write_text(f"token was {canvas_token}", encoding="utf-8")
    print(f"Authorization: Bearer {canvas_token}", file=sys.stderr)
    found = {name for name, _ in leaks(artifacts_of(tmp_path, capsys, every_log), secrets)}
    assert found == {"logs", "notes.txt", "stderr"}


def test_reprs_of_requests_and_tokens_leave_the_token_out() -> None:
    """Reprs reach failure messages and log lines; the token is in the objects, not in
    their reprs."""
    world = World()
    token = world.tokens.issue(Service.CANVAS)
    request = ApiRequest("GET", "http://canvas.test/api/v1/courses", bearer(token))
    stored = world.tokens._tokens[token]
    assert request.bearer() == token and stored.value == token
    assert token not in repr(request) and token not in repr(stored)
    oauth = adapter.tokens.OAuthToken.static(token)
    assert oauth.headers() == bearer(token) and token not in repr(oauth)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
