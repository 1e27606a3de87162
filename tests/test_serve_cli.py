"""``credsync serve`` as a user runs it: a real process, on loopback, read by its output."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture
def served() -> Iterator[dict[str, list[str]]]:
    process = subprocess.Popen(
        [sys.executable, "-c", "from scenarios.cli import main; main()", "serve", "--seed", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: dict[str, list[str]] = {}
    try:
        while len(lines) < 2 or "username" not in lines.get("credentials", []):
            line = process.stdout.readline()
            assert line, "credsync serve exited before announcing its servers"
            service, *rest = line.split()
            lines[service] = lines.get(service, []) + rest
        yield lines
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_announces_loopback_servers_that_answer_like_the_real_ones(
    served: dict[str, list[str]],
) -> None:
    canvas_url, _, canvas_token = served["canvas"][:3]
    credentials_url, _, credentials_token = served["credentials"][:3]
    assert canvas_url.startswith("http://127.0.0.1:") and credentials_url.startswith(
        "http://127.0.0.1:"
    )
    courses = httpx.get(
        f"{canvas_url}/api/v1/courses",
        params={"per_page": 1},
        headers={"Authorization": f"Bearer {canvas_token}"},
    )
    assert courses.status_code == 200 and len(courses.json()) == 1
    assert 'rel="next"' in courses.headers["link"]
    auth = {"Authorization": f"Bearer {credentials_token}"}
    badge = httpx.get(f"{credentials_url}/v2/badgeclasses", headers=auth).json()["result"][0]
    award = httpx.post(
        f"{credentials_url}/v2/badgeclasses/{badge['entityId']}/assertions",
        headers=auth,
        json={"recipient": {"identity": "Ada@Example.EDU"}},
    )
    body = award.json()
    assert award.status_code == 201 and body["status"]["success"] is True
    assert body["result"][0]["recipient"]["plaintextIdentity"] == "ada@example.edu"
    username, password = served["credentials"][4], served["credentials"][6]
    grant = httpx.post(
        f"{credentials_url}/o/token",
        data={"grant_type": "password", "username": username, "password": password},
    )
    assert grant.status_code == 200 and grant.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(("args", "status"), [([], 429), (["--canvas-throttle", "403"], 403)])
def test_serve_passes_the_canvas_throttle_form_and_links_every_course(
    monkeypatch: pytest.MonkeyPatch, args: list[str], status: int
) -> None:
    import scenarios.cli as cli
    import simulators.http.serve

    served: list[object] = []
    monkeypatch.setattr(simulators.http.serve, "serve_forever", lambda *a: served.append(a))
    assert cli.main(["serve", "--world", "semester", *args]) == 0
    (world, services, canvas_port, credentials_port, host, _out) = served[0]  # type: ignore[misc]
    assert services.canvas_throttle_status == status and host == "127.0.0.1"
    assert (canvas_port, credentials_port) == (0, 0) and len(world.links) == 12
