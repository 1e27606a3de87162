"""The reference production adapter: engine commands over real HTTP with ``httpx``.

It does what :class:`simulators.transport.MemoryTransport` does, over a socket (or an ASGI
app): build the request with :func:`sync_core.wire.request_for`, attach the service's Bearer
token, renew the token before it expires and after a 401, and map the answer back with
:func:`sync_core.wire.event_for`. It never retries: retries, backoff and the award outbox are
the engine's, so a failed request is reported exactly once, as exactly one event.
"""

from __future__ import annotations

import time
from types import TracebackType
from urllib.parse import urlsplit

import httpx

from adapter.tokens import Clock, OAuthToken
from sync_core.commands import Command, FetchCanvasPage
from sync_core.events import Event, Failure, RequestFailed
from sync_core.wire import HttpResponse, event_for, failure_for_transport_error, request_for

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
"""Long enough for a slow Canvas page, short enough that a hung request ends well within
the engine's round timeout; a timeout is reported as such (AMBIGUOUS for a write)."""


class HttpAdapter:
    """Executes engine commands against a Canvas and a Credentials base URL.

    Pass ``client`` to choose the HTTP transport (an ``httpx.ASGITransport`` in simulation,
    a ``MockTransport`` in tests); the adapter then leaves closing it to the caller.
    """

    def __init__(
        self,
        canvas_base: str,
        canvas_token: OAuthToken,
        credentials_base: str,
        credentials_token: OAuthToken,
        *,
        clock: Clock = time.time,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.canvas_base = canvas_base.rstrip("/")
        self.credentials_base = credentials_base.rstrip("/")
        self.canvas_token = canvas_token
        self.credentials_token = credentials_token
        self._canvas_origin = _origin(self.canvas_base)
        self._credentials_origin = _origin(self.credentials_base)
        if self._canvas_origin is None or self._credentials_origin is None:
            raise ValueError("base URLs must be absolute http(s) URLs")
        self._clock = clock
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._owns_client = client is None
        self._client = httpx.AsyncClient() if client is None else client

    async def execute(self, command: Command) -> Event:
        """Perform one command and return the one event that answers it."""
        request = request_for(command, self.canvas_base, self.credentials_base)
        origin, token = (
            (self._canvas_origin, self.canvas_token)
            if isinstance(command, FetchCanvasPage)
            else (self._credentials_origin, self.credentials_token)
        )
        if _origin(request.url) != origin:
            # A page link naming another host would carry our token there: refuse it.
            return RequestFailed(
                command.request_id, Failure.REJECTED, detail="page link leaves the service"
            )
        if token.needs_refresh(self._clock()):
            await token.refresh(self._client, self._clock, self._timeout)
        try:
            response = await self._client.request(
                request.method,
                request.url,
                json=request.json,
                headers=token.headers(),
                timeout=self._timeout,
            )
        except httpx.TimeoutException:
            return failure_for_transport_error(command, "timeout")
        except httpx.RequestError:
            # Reset, refused, protocol error, undecodable body: no usable answer arrived.
            return failure_for_transport_error(command, "reset")
        if response.status_code == 401:
            # Renew for the requests that follow; the 401 itself still goes to the engine.
            await token.refresh(self._client, self._clock, self._timeout)
        return event_for(command, wire_response(response))

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> HttpAdapter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def wire_response(response: httpx.Response) -> HttpResponse:
    """The response as :mod:`sync_core.wire` reads it: decoded JSON when the server said it
    is JSON (Badgr says ``application/ld+json``), the text otherwise (Canvas's throttle
    answer is plain text), ``None`` when there is no body. Repeated headers are joined with
    ``", "``, which the ``Link`` parser accepts."""
    return HttpResponse(response.status_code, dict(response.headers.items()), _body(response))


def _body(response: httpx.Response) -> object:
    if not response.content:
        return None
    if "json" in response.headers.get("Content-Type", "").lower():
        try:
            return response.json()  # from the bytes: no text decoding on the common path
        except ValueError:
            return response.text  # the engine quarantines it as a malformed record
    return response.text


Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> Origin | None:
    """(scheme, host, port) with the default port filled in; ``None`` when unparseable.
    ``urlsplit`` rather than ``httpx.URL``: this runs on every request and is 200x cheaper."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if parts.hostname is None or port is None:
        return None
    return scheme, parts.hostname, port
