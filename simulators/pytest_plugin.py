"""pytest fixtures for testing your own Canvas or Credentials code against credsync's fakes.

Installed with credsync through the ``pytest11`` entry point, so any project that installs
credsync gets these fixtures without a ``conftest.py``:

``credsync_seed``
    The seed of everything below (``--credsync-seed N``, default 1).
``credsync_world``
    :meth:`World.small` for that seed, every course linked to its Credentials group.
``credsync_faults``
    A :class:`FaultSwitch`: ``on(rates, only=...)`` / ``off()``, or ``with faults.on(...):``.
    Faults start off.
``credsync_services``
    The :class:`~simulators.services.Services` both fakes answer through (its ``log`` lists
    every request with the fault it got).
``credsync_servers``
    Both fakes on ephemeral 127.0.0.1 ports: :class:`LiveServers`, URLs and tokens ready.
``credsync_asgi``
    Both fakes in process: :class:`AsgiClients`, two ``httpx.AsyncClient`` over
    ``httpx.ASGITransport`` with the tokens already in their headers.

Every fixture is function-scoped: each test gets a fresh world, so a test that awards a
badge or switches a fault on cannot leak into the next. Nothing waits for the servers to
be "ready": their sockets listen before the fixture returns (see :mod:`simulators.http.serve`).

This module is imported by every pytest run of anyone who installs credsync, so it imports
nothing heavy at module level: the simulators, FastAPI, uvicorn and httpx are imported by
the fixtures that need them, and a test that uses none of them pays for none of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import httpx

    from simulators.faults import FaultPlan, FaultRates
    from simulators.services import Services
    from simulators.world import World


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("credsync", "credsync simulated Canvas and Credentials")
    group.addoption(
        "--credsync-seed",
        type=int,
        default=1,
        metavar="N",
        help="seed of the credsync_* fixtures' world and faults (default 1)",
    )


class FaultSwitch:
    """Switches the fakes' fault plan on and off during a test.

    ``on`` returns the switch itself, so it also works as a context manager that switches
    faults off again on the way out, whatever happens inside::

        with credsync_faults.on(FaultRates(transient_5xx=1000), only=["canvas-read"]):
            ...

    ``only`` names request targets (:data:`simulators.faults.TARGETS`): ``canvas-read``,
    ``credentials-read``, ``award``, ``member``, ``leaderboard``. Decisions come from a
    generator seeded with ``credsync_seed``, so a failing test fails the same way again.
    """

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan

    def on(self, rates: FaultRates, only: Iterable[str] | None = None) -> FaultSwitch:
        from simulators.faults import TARGETS

        targets = None if only is None else frozenset(only)
        if targets is not None and not targets <= set(TARGETS):
            unknown = sorted(targets - set(TARGETS))
            raise ValueError(f"unknown fault targets {unknown}; known: {list(TARGETS)}")
        self.plan.rates = rates
        self.plan.only = targets
        self.plan.enabled = True
        return self

    def off(self) -> None:
        self.plan.heal()

    @property
    def active(self) -> bool:
        return self.plan.enabled

    def __enter__(self) -> FaultSwitch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.off()


@dataclass(frozen=True)
class LiveServers:
    """Both fakes on loopback. The tokens are service tokens that see every course and
    never expire on their own (a ``token_expiry`` fault still expires them)."""

    canvas_url: str
    canvas_token: str
    credentials_url: str
    credentials_token: str


@dataclass(frozen=True)
class AsgiClients:
    """``httpx.AsyncClient`` for each fake, in process (no sockets), base URLs
    ``http://canvas.test`` and ``http://credentials.test``, tokens in the headers."""

    canvas: httpx.AsyncClient
    credentials: httpx.AsyncClient


@pytest.fixture
def credsync_seed(request: pytest.FixtureRequest) -> int:
    """The seed of the credsync world and faults: ``--credsync-seed N``, default 1."""
    seed: int = request.config.getoption("credsync_seed")
    return seed


@pytest.fixture
def credsync_world(credsync_seed: int) -> World:
    """A fresh :meth:`simulators.World.small` world with every course linked: courses
    101 (two sections, graded work, quizzes, modules), 102 (modules only) and 103 (a
    student without an email, one only invited); users from 1001."""
    from simulators.world import World

    world, rules = World.small(credsync_seed)
    for course_id, course_rules in sorted(rules.items()):
        world.link_course(course_id, course_rules)
    return world


@pytest.fixture
def credsync_faults(credsync_seed: int) -> FaultSwitch:
    """A :class:`simulators.pytest_plugin.FaultSwitch` over the fakes' fault plan:
    ``on(FaultRates(...), only=[...])``, ``off()``, or ``with credsync_faults.on(...):``.
    Faults start off."""
    from simulators.faults import FaultPlan, FaultRates, SeededChoices

    return FaultSwitch(FaultPlan(FaultRates.none(), SeededChoices(credsync_seed), enabled=False))


@pytest.fixture
def credsync_services(credsync_world: World, credsync_faults: FaultSwitch) -> Services:
    """The :class:`simulators.Services` both fakes answer through; ``log`` records each
    request with its fault and status."""
    from simulators.services import Services

    return Services(credsync_world, credsync_faults.plan)


@pytest.fixture
def credsync_servers(credsync_services: Services) -> Iterator[LiveServers]:
    """Canvas and Credentials on ephemeral 127.0.0.1 ports, stopped after the test:
    :class:`simulators.pytest_plugin.LiveServers` (``canvas_url``, ``canvas_token``,
    ``credentials_url``, ``credentials_token``)."""
    from simulators.http.serve import run_servers

    world = credsync_services.world
    canvas_token, credentials_token = _tokens(world)
    with run_servers(world, credsync_services) as handle:
        yield LiveServers(
            handle.canvas_url, canvas_token, handle.credentials_url, credentials_token
        )


@pytest.fixture
def credsync_asgi(credsync_services: Services) -> AsgiClients:
    """Both fakes in process: :class:`simulators.pytest_plugin.AsgiClients` with
    ``canvas`` and ``credentials`` ``httpx.AsyncClient`` over ``httpx.ASGITransport``."""
    import httpx

    from simulators.http.apps import canvas_app, credentials_app

    canvas_token, credentials_token = _tokens(credsync_services.world)
    clients = AsgiClients(
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=canvas_app(credsync_services)),
            base_url="http://canvas.test",
            headers={"Authorization": f"Bearer {canvas_token}"},
        ),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=credentials_app(credsync_services)),
            base_url="http://credentials.test",
            headers={"Authorization": f"Bearer {credentials_token}"},
        ),
    )
    # Not closed afterwards: an ASGITransport holds no connection, so there is nothing to
    # release, and closing would need an event loop that an async test may still own.
    return clients


def _tokens(world: World) -> tuple[str, str]:
    from simulators.tokens import Service

    return (
        world.tokens.issue(Service.CANVAS, ttl=math.inf),
        world.tokens.issue(Service.CREDENTIALS, ttl=math.inf),
    )
