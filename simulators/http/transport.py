"""The production adapter as a simulation transport: the same commands, over HTTP.

:class:`AsgiTransport` runs :class:`adapter.HttpAdapter` against the FastAPI apps in process
(``httpx.ASGITransport``), on the same base URLs as :class:`MemoryTransport`, so page links
are identical; :class:`LiveHttpTransport` runs it over real sockets to the apps served on
loopback. Both share :class:`Services` with the memory transport, so a seed injects the same
faults on the same requests whichever transport carries them: that is what lets the
differential test demand identical runs, and what makes the HTTP path's token refresh,
header and body handling answerable to the in-memory reference.

The simulated sync holds what a real deployment holds: a Canvas developer key (client id
and secret) with a refresh token, and a Badgr refresh token, each with a live access token
whose announced lifetime is the service's. Renewals go through the real grant endpoints;
token grants are never faulted (:meth:`Services.serve` does not see them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx

from adapter.http import HttpAdapter
from adapter.tokens import OAuthToken
from simulators.faults import FaultPlan
from simulators.http.apps import canvas_app, credentials_app
from simulators.http.serve import serve_on
from simulators.services import LogEntry, Services
from simulators.tokens import Service
from simulators.world import World
from sync_core.commands import Command
from sync_core.events import Event

CANVAS_BASE = "http://canvas.test"
CREDENTIALS_BASE = "http://credentials.test"
SIM_CLIENT_ID = "credsync-sim"
SIM_CLIENT_SECRET = "credsync-sim-secret"

T = TypeVar("T")


class _HttpTransport:
    """An :class:`HttpAdapter` driven synchronously, one command at a time, on one event
    loop that lives as long as the transport (a loop per request would cost more than the
    request and would strand the client's connections)."""

    def __init__(
        self,
        world: World,
        services: Services,
        canvas_base: str,
        credentials_base: str,
        client: httpx.AsyncClient,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.world = world
        self.plan = services.plan
        self.services = services
        self._loop = asyncio.new_event_loop() if loop is None else loop
        self._client = client
        self.adapter = HttpAdapter(
            canvas_base,
            _canvas_token(world, canvas_base),
            credentials_base,
            _credentials_token(world, credentials_base),
            clock=lambda: world.clock.now,
            client=client,
        )

    @property
    def log(self) -> list[LogEntry]:
        return self.services.log

    def execute(self, command: Command) -> Event:
        """Perform one command and return the one event that answers it.

        The apps label their log entries by route (``GET /api/v1/...``), as a server only
        can; the transport knows which command the request carried and relabels its entry
        with the command's name, as :class:`MemoryTransport` writes it, so that the logs of
        both paths compare equal and readers of the log (the CLI report, the state
        machine's statistics) see the same names whichever transport ran."""
        start = len(self.services.log)
        event = self._run(self.adapter.execute(command))
        name = type(command).__name__
        log = self.services.log
        log[start:] = [(at, name, fault, status) for at, _, fault, status in log[start:]]
        return event

    def close(self) -> None:
        if not self._loop.is_closed():
            self._run(self._client.aclose())
            self._loop.close()

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(work)


class AsgiTransport(_HttpTransport):
    """The adapter against the FastAPI apps in this process: no sockets, no threads."""

    def __init__(self, world: World, plan: FaultPlan) -> None:
        services = Services(world, plan)
        apps = {
            httpx.URL(CANVAS_BASE).host: httpx.ASGITransport(app=canvas_app(services)),
            httpx.URL(CREDENTIALS_BASE).host: httpx.ASGITransport(app=credentials_app(services)),
        }
        client = httpx.AsyncClient(transport=_ByHost(apps))
        super().__init__(world, services, CANVAS_BASE, CREDENTIALS_BASE, client)


class _ByHost(httpx.AsyncBaseTransport):
    """Routes each request to the app its host names. A client built this way has no
    network transport at all (so it loads no TLS certificates, tens of milliseconds per
    transport): a request for any other host is a bug and raises."""

    def __init__(self, apps: dict[str, httpx.ASGITransport]) -> None:
        self._apps = apps

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._apps[request.url.host].handle_async_request(request)


class LiveHttpTransport(_HttpTransport):
    """The adapter over real sockets to both apps served on 127.0.0.1 ephemeral ports, the
    servers running on the adapter's own event loop (:func:`serve_on`). Page links then
    name those ports; call :meth:`close` to stop the servers."""

    def __init__(self, world: World, plan: FaultPlan) -> None:
        services = Services(world, plan)
        loop = asyncio.new_event_loop()
        self._servers = serve_on(loop, world, services)
        client = httpx.AsyncClient()
        super().__init__(
            world,
            services,
            self._servers.canvas_url,
            self._servers.credentials_url,
            client,
            loop,
        )

    def close(self) -> None:
        if not self._loop.is_closed():
            self._run(self._client.aclose())
            self._run(self._servers.stop())
            self._loop.close()


def _canvas_token(world: World, base: str) -> OAuthToken:
    world.tokens.add_client(Service.CANVAS, SIM_CLIENT_ID, SIM_CLIENT_SECRET)
    access, refresh = world.tokens.issue_pair(Service.CANVAS)
    return OAuthToken.canvas(
        base,
        access,
        client_id=SIM_CLIENT_ID,
        client_secret=SIM_CLIENT_SECRET,
        refresh_token=refresh,
        expires_at=world.clock.now + Service.CANVAS.ttl,
    )


def _credentials_token(world: World, base: str) -> OAuthToken:
    access, refresh = world.tokens.issue_pair(Service.CREDENTIALS)
    return OAuthToken.credentials(
        base, access, refresh_token=refresh, expires_at=world.clock.now + Service.CREDENTIALS.ttl
    )
