"""An in-memory adapter: engine commands in, engine events out, through the fault plan.

It does what a real HTTP adapter does (build the request with :mod:`sync_core.wire`,
attach its Bearer token, refresh it before it expires and after a 401, map the answer back)
but hands the request to :class:`~simulators.services.Services` directly instead of over a
socket. Faults are decided there, so the HTTP transports inject the same ones.
"""

from __future__ import annotations

from simulators.api import ApiRequest
from simulators.faults import FaultPlan
from simulators.services import Dropped, LogEntry, Services
from simulators.tokens import Service
from simulators.world import World
from sync_core.commands import Command, FetchCanvasPage
from sync_core.events import Event
from sync_core.wire import event_for, failure_for_transport_error, request_for

REFRESH_MARGIN = 60.0
"""Refresh this long before the announced expiry, as OAuth clients do, so that only an
unexpected expiry (the TOKEN_EXPIRY fault) ever reaches the engine as a 401."""


class MemoryTransport:
    """Executes engine commands against a :class:`World` through :class:`Services`, doing
    what a real adapter does: build the request with :mod:`sync_core.wire`, attach and
    refresh its Bearer tokens, and map the answer back to one engine event."""

    def __init__(
        self,
        world: World,
        plan: FaultPlan,
        canvas_base: str = "http://canvas.test",
        credentials_base: str = "http://credentials.test",
        canvas_throttle_status: int = 429,
    ) -> None:
        self.world = world
        self.plan = plan
        self.services = Services(world, plan, canvas_throttle_status)
        self.canvas_base = canvas_base
        self.credentials_base = credentials_base
        self.tokens: dict[Service, str] = {}
        self._expires_at: dict[Service, float] = {}
        for service in Service:
            self._store_token(service, world.tokens.issue(service))

    @property
    def log(self) -> list[LogEntry]:
        return self.services.log

    def execute(self, command: Command) -> Event:
        """Perform one command and return the one event that answers it."""
        request = request_for(command, self.canvas_base, self.credentials_base)
        service = Service.CANVAS if isinstance(command, FetchCanvasPage) else Service.CREDENTIALS
        if self.world.clock.now >= self._expires_at[service] - REFRESH_MARGIN:
            self._refresh(service)
        headers = {"Authorization": f"Bearer {self.tokens[service]}"}
        api_request = ApiRequest(request.method, request.url, headers, request.json)
        outcome = self.services.serve(service, api_request, type(command).__name__)
        if isinstance(outcome, Dropped):
            return failure_for_transport_error(command, outcome.kind)
        if outcome.status == 401:
            # What a real adapter does after a 401: refresh, so later requests succeed.
            self._refresh(service)
        return event_for(command, outcome)

    def _refresh(self, service: Service) -> None:
        self._store_token(service, self.world.tokens.refresh(self.tokens[service]))

    def _store_token(self, service: Service, token: str) -> None:
        """Remember the token and the expiry its grant announced (``expires_in``); a client
        never learns of Badgr's sliding renewals, so it refreshes on the announced date."""
        self.tokens[service] = token
        self._expires_at[service] = self.world.clock.now + service.ttl
