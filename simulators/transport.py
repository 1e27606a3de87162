"""An in-memory adapter: engine commands in, engine events out, with faults injected.

It does what a real HTTP adapter does (build the request with :mod:`sync_core.wire`,
attach its Bearer token, refresh the token after a 401, map the answer back) but calls the
simulated APIs directly. Faults are applied where they happen in reality: before the server
(timeouts, throttles, 5xx), inside it (stale replica, drifting pages, slow handling) or
after it (a committed write whose response is lost).
"""

from __future__ import annotations

import json

from simulators.api import ApiRequest
from simulators.canvas_api import CanvasApi
from simulators.credentials_api import CredentialsApi
from simulators.faults import FaultKind, FaultPlan
from simulators.tokens import Service
from simulators.world import World
from sync_core.commands import Command, FetchCanvasPage
from sync_core.events import Event
from sync_core.wire import (
    HttpResponse,
    event_for,
    failure_for_transport_error,
    is_write,
    request_for,
)

LogEntry = tuple[float, str, FaultKind | None, int | None]
"""(virtual time, command type, injected fault, HTTP status the server sent or None)."""

CANVAS_THROTTLE_TEXT = "403 Forbidden (Rate Limit Exceeded)\n"
TEXT_TYPE = {"Content-Type": "text/plain; charset=utf-8"}
REFRESH_MARGIN = 60.0
"""Refresh this long before the announced expiry, as OAuth clients do, so that only an
unexpected expiry (the TOKEN_EXPIRY fault) ever reaches the engine as a 401."""


class MemoryTransport:
    """Executes engine commands against a :class:`World`; ``log`` records every request."""

    def __init__(
        self,
        world: World,
        plan: FaultPlan,
        canvas_base: str = "http://canvas.test",
        credentials_base: str = "http://credentials.test",
        canvas_throttle_status: int = 429,
    ) -> None:
        if canvas_throttle_status not in (403, 429):
            raise ValueError("Canvas throttles with 403 (before Oct 2025) or 429")
        self.world = world
        self.plan = plan
        self.canvas_base = canvas_base
        self.credentials_base = credentials_base
        self.canvas_throttle_status = canvas_throttle_status
        self.tokens: dict[Service, str] = {}
        self._expires_at: dict[Service, float] = {}
        for service in Service:
            self._store_token(service, world.tokens.issue(service))
        self.log: list[LogEntry] = []

    def execute(self, command: Command) -> Event:
        """Perform one command and return the one event that answers it."""
        request = request_for(command, self.canvas_base, self.credentials_base)
        service = Service.CANVAS if isinstance(command, FetchCanvasPage) else Service.CREDENTIALS
        fault = self.plan.decide(is_write(command), service is Service.CANVAS)
        if self.world.clock.now >= self._expires_at[service] - REFRESH_MARGIN:
            self._refresh(service)
        if fault is FaultKind.TOKEN_EXPIRY:
            self.world.tokens.expire(self.tokens[service])
        if fault is FaultKind.TIMEOUT_BEFORE_COMMIT:
            return self._record(
                command, fault, None, failure_for_transport_error(command, "timeout")
            )
        if fault is FaultKind.SLOW_RESPONSE:
            self.world.clock.advance(5 + self.plan.source.draw(56))
        api_request = ApiRequest(
            request.method,
            request.url,
            {"Authorization": f"Bearer {self.tokens[service]}"},
            request.json,
        )
        response = self._serve(service, api_request, fault)
        if response.status == 401:
            # What a real adapter does after a 401: refresh, so later requests succeed.
            self._refresh(service)
        if fault is FaultKind.LOST_RESPONSE:
            lost = failure_for_transport_error(command, "timeout")
            return self._record(command, fault, response.status, lost)
        return self._record(command, fault, response.status, event_for(command, response))

    def _refresh(self, service: Service) -> None:
        self._store_token(service, self.world.tokens.refresh(self.tokens[service]))

    def _store_token(self, service: Service, token: str) -> None:
        """Remember the token and the expiry its grant announced (``expires_in``); a client
        never learns of Badgr's sliding renewals, so it refreshes on the announced date."""
        self.tokens[service] = token
        self._expires_at[service] = self.world.clock.now + service.ttl

    def _serve(
        self, service: Service, request: ApiRequest, fault: FaultKind | None
    ) -> HttpResponse:
        if fault is FaultKind.TRANSIENT_5XX:
            return HttpResponse(503, TEXT_TYPE, "503 Service Unavailable")
        if fault is FaultKind.THROTTLE:
            return self._throttled(service)
        if service is Service.CREDENTIALS:
            return _wire_copy(
                CredentialsApi(self.world.credentials, self.world.tokens).handle(request)
            )
        canvas = self.world.canvas
        if fault is FaultKind.STALE_READ:
            canvas = canvas.replica()
        shift = 0
        if fault is FaultKind.PAGE_DRIFT:
            shift = (-1, 1)[self.plan.source.draw(2)]
        api = CanvasApi(canvas, self.world.tokens)
        return _wire_copy(api.handle(request, page_shift=shift))

    def _throttled(self, service: Service) -> HttpResponse:
        retry_after = {"Retry-After": str(1 + self.plan.source.draw(30))}
        if service is Service.CANVAS and self.canvas_throttle_status == 403:
            return HttpResponse(403, {**TEXT_TYPE, **retry_after}, CANVAS_THROTTLE_TEXT)
        body = "429 Too Many Requests (Rate Limit Exceeded)\n"
        return HttpResponse(
            429, {**TEXT_TYPE, **retry_after, "X-Rate-Limit-Remaining": "0.0"}, body
        )

    def _record(
        self, command: Command, fault: FaultKind | None, status: int | None, event: Event
    ) -> Event:
        self.log.append((self.world.clock.now, type(command).__name__, fault, status))
        return event


def _wire_copy(response: HttpResponse) -> HttpResponse:
    """Serialise and parse the body as a socket would, so the engine never holds a
    reference into simulator state and never sees a value JSON cannot carry."""
    if response.body is None or isinstance(response.body, str):
        return response
    return HttpResponse(response.status, response.headers, json.loads(json.dumps(response.body)))
