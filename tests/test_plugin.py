"""The pytest plugin (``simulators.pytest_plugin``), used as a third party would use it.

The fixtures are tested here directly (credsync's own pytest run loads the plugin through
its entry point like anyone else's), and once from a fresh project directory that holds only
a test file: ``pytest --fixtures`` there must list them, and a test using the live servers,
the real ``canvasapi`` client and a fault must pass.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from canvasapi import Canvas
from canvasapi.exceptions import CanvasException

from simulators import FaultKind, FaultRates, World
from simulators.pytest_plugin import AsgiClients, FaultSwitch, LiveServers
from simulators.services import Services

pytestmark = pytest.mark.filterwarnings("ignore:Canvas may respond unexpectedly:UserWarning")

FIXTURES = (
    "credsync_seed",
    "credsync_world",
    "credsync_faults",
    "credsync_services",
    "credsync_servers",
    "credsync_asgi",
)
OUTAGE = FaultRates(transient_5xx=1000)


def test_world_is_small_for_the_seed_and_linked(credsync_world: World, credsync_seed: int) -> None:
    expected, rules = World.small(credsync_seed)
    assert {c.id: c.name for c in credsync_world.canvas.courses.values()} == {
        c.id: c.name for c in expected.canvas.courses.values()
    }
    assert set(credsync_world.links) == set(rules) == {101, 102, 103}


def test_live_servers_with_canvasapi_and_a_fault_switched_on_then_off(
    credsync_servers: LiveServers,
    credsync_faults: FaultSwitch,
    credsync_world: World,
    credsync_services: Services,
) -> None:
    canvas = Canvas(credsync_servers.canvas_url, credsync_servers.canvas_token)
    names = {c.id: c.name for c in credsync_world.canvas.courses.values()}
    assert {c.id: c.name for c in canvas.get_courses()} == names
    with (
        credsync_faults.on(OUTAGE, only=["canvas-read"]),
        pytest.raises(CanvasException, match="status code 503"),
    ):
        canvas.get_course(101)
    assert not credsync_faults.active
    assert canvas.get_course(101).name == names[101]
    faults = [(fault, status) for _, _, fault, status in credsync_services.log]
    assert faults[-2:] == [(FaultKind.TRANSIENT_5XX, 503), (None, 200)]


def test_faults_aimed_at_canvas_reads_leave_credentials_alone(
    credsync_asgi: AsgiClients, credsync_faults: FaultSwitch, credsync_world: World
) -> None:
    issuer = next(iter(credsync_world.credentials.issuers))

    async def both() -> tuple[int, int]:
        canvas = await credsync_asgi.canvas.get("/api/v1/courses/101")
        creds = await credsync_asgi.credentials.get(f"/v2/issuers/{issuer}/badgeclasses")
        return canvas.status_code, creds.status_code

    credsync_faults.on(OUTAGE, only=["canvas-read"])
    assert asyncio.run(both()) == (503, 200)
    credsync_faults.on(OUTAGE)
    assert asyncio.run(both()) == (503, 503)
    credsync_faults.off()
    assert asyncio.run(both()) == (200, 200)


def test_asgi_clients_serve_the_world_with_tokens_set(
    credsync_asgi: AsgiClients, credsync_world: World
) -> None:
    async def courses() -> list[int]:
        response = await credsync_asgi.canvas.get("/api/v1/courses")
        assert response.status_code == 200
        return [c["id"] for c in response.json()]

    assert asyncio.run(courses()) == sorted(credsync_world.canvas.courses)


def test_a_fault_switch_turns_off_when_its_block_raises(credsync_faults: FaultSwitch) -> None:
    assert not credsync_faults.active  # faults start off
    with pytest.raises(KeyError), credsync_faults.on(OUTAGE):
        assert credsync_faults.active
        raise KeyError("the test failed inside the block")
    assert not credsync_faults.active


def test_an_unknown_fault_target_is_refused_and_nothing_changes(
    credsync_faults: FaultSwitch,
) -> None:
    with pytest.raises(ValueError, match=r"unknown fault targets \['canvas-write'\]"):
        credsync_faults.on(OUTAGE, only=["canvas-write", "award"])
    assert not credsync_faults.active and credsync_faults.plan.rates == FaultRates.none()


def test_the_plugin_imports_nothing_heavy() -> None:
    """It loads in every pytest run of anyone who installs credsync; the check itself is
    shown to catch a module that does import the web stack."""
    assert heavy_imports("simulators.pytest_plugin") == []
    assert heavy_imports("simulators.http.apps") == ["faker", "fastapi", "httpx", "starlette"]


def test_the_simulators_package_loads_its_names_on_first_use() -> None:
    """``simulators/__init__`` imports nothing up front (the plugin lives in the package),
    yet every name it exports resolves, to the object its home module defines."""
    import simulators

    for name in simulators.__all__:
        value = getattr(simulators, name)
        assert getattr(sys.modules[value.__module__], name) is value
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        simulators.Nothing  # noqa: B018


def heavy_imports(module: str) -> list[str]:
    code = (
        f"import sys, {module}; "
        "print(' '.join(m for m in ('faker', 'fastapi', 'httpx', 'starlette', 'uvicorn') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


THIRD_PARTY_TEST = """
    import pytest
    from canvasapi import Canvas
    from canvasapi.exceptions import CanvasException

    from simulators import FaultRates


    def test_seed_from_the_command_line(credsync_seed):
        assert credsync_seed == 3


    def test_canvas_outage_then_recovery(credsync_servers, credsync_faults, credsync_world):
        canvas = Canvas(credsync_servers.canvas_url, credsync_servers.canvas_token)
        with credsync_faults.on(FaultRates(transient_5xx=1000), only=["canvas-read"]):
            with pytest.raises(CanvasException):
                canvas.get_course(101)
        assert canvas.get_course(101).name == credsync_world.canvas.courses[101].name
"""


def test_a_fresh_project_gets_the_fixtures_from_the_installed_package(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(textwrap.dedent(THIRD_PARTY_TEST), encoding="utf-8")
    listed = pytest_in(tmp_path, "--fixtures")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for name in FIXTURES:
        assert f"\n{name} -- " in listed.stdout or f"\n{name}\n" in listed.stdout, name
    assert "Faults start off." in listed.stdout  # the docstrings come along
    ran = pytest_in(tmp_path, "--credsync-seed", "3")
    assert ran.returncode == 0 and "2 passed" in ran.stdout, ran.stdout + ran.stderr


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest run from the project directory, with only what is installed: no conftest,
    no ini file, no cache, and none of this run's pytest options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
