"""Serve both simulated services on real sockets, for clients that need one (canvasapi
uses ``requests``; a production adapter under test; a person with ``curl``).

Both uvicorn servers run on one event loop in one background thread. The handlers are
synchronous code called from ``async`` routes, so that single loop serialises every request
to the shared :class:`World` without a lock, in arrival order, as the fault plan expects.

Listening sockets are bound and listening before :func:`run_servers` returns, so the real
ports are known at once and a client may connect immediately: the kernel queues the
connection until the loop accepts it, and no caller ever has to wait for "ready".

A request the fault plan drops must reach the client as no response at all. ASGI has no
"abort" message and uvicorn turns an application exception into a 500, so the h11
protocol is subclassed to give each connection's app a way to hang up: the app's messages
are held until it finishes, and on :class:`~simulators.http.apps.ConnectionDropped` they
are discarded and the connection is reset (``SO_LINGER`` 0, so the client reads
``ECONNRESET``) or, for a timeout, closed before any byte of a response (a real timeout
would make the client wait for its own deadline). httpx then raises ``ReadError`` (reset)
or ``RemoteProtocolError`` (timeout), requests a ``ConnectionError`` for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TextIO

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from simulators.http.apps import ConnectionDropped, canvas_app, credentials_app
from simulators.services import Services
from simulators.tokens import Service
from simulators.world import World

_GONE: Final = frozenset({"deleted", "rejected"})
SIM_USERNAME: Final = "admin@credentials.test"
SIM_PASSWORD: Final = "credsync-simulator"
"""The Credentials login :func:`serve_info` registers for the password grant."""


@dataclass
class ServerHandle:
    """Both running servers. ``stop()`` (or leaving the ``with`` block) shuts them down
    and re-raises whatever ended the server thread early."""

    canvas_url: str
    credentials_url: str
    _servers: list[uvicorn.Server]
    _thread: threading.Thread
    _failure: list[BaseException]

    def wait(self) -> None:
        """Block until the servers stop (interruptible by Ctrl-C in the main thread)."""
        self._thread.join()

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        self._thread.join()
        if self._failure:
            raise RuntimeError("the simulator's server thread failed") from self._failure[0]

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_servers(
    world: World,
    services: Services,
    canvas_port: int = 0,
    credentials_port: int = 0,
    host: str = "127.0.0.1",
) -> ServerHandle:
    """Start Canvas and Credentials on ``host`` (port 0: an ephemeral port each) and return
    at once; the handle's URLs carry the real ports."""
    apps, sockets = _bind(world, services, host, (canvas_port, credentials_port))
    servers = [uvicorn.Server(_config(app)) for app in apps]
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_serve_all(servers, sockets))
        except BaseException as exc:  # reported by stop(); a thread has no caller
            failure.append(exc)
        finally:
            for sock in sockets:  # queued connections are refused, not left hanging
                sock.close()

    thread = threading.Thread(target=run, name="credsync-http", daemon=True)
    canvas_url, credentials_url = (_url(host, sock) for sock in sockets)
    handle = ServerHandle(canvas_url, credentials_url, servers, thread, failure)
    thread.start()
    return handle


def _bind(
    world: World, services: Services, host: str, ports: tuple[int, int]
) -> tuple[tuple[ASGIApp, ASGIApp], list[socket.socket]]:
    """The Canvas and Credentials apps and a listening socket for each (port 0: an
    ephemeral one), bound before any server starts so the caller knows the real ports."""
    if services.world is not world:
        raise ValueError("services must serve the world whose tokens the caller hands out")
    apps = (canvas_app(services), credentials_app(services))
    sockets: list[socket.socket] = []
    try:
        for port in ports:
            sockets.append(_listen(host, port))
    except OSError:  # a busy port: release the one already bound
        for sock in sockets:
            sock.close()
        raise
    return apps, sockets


@dataclass
class LoopServers:
    """Both apps served as a task of the caller's own event loop, no thread: they make
    progress whenever that loop runs, which is whenever its client awaits a response.
    ``await stop()`` shuts them down; the loop must then run no further request."""

    canvas_url: str
    credentials_url: str
    _servers: list[uvicorn.Server]
    _sockets: list[socket.socket]
    _task: asyncio.Task[None]

    async def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        try:
            await self._task
        finally:
            for sock in self._sockets:
                sock.close()


def serve_on(
    loop: asyncio.AbstractEventLoop, world: World, services: Services, host: str = "127.0.0.1"
) -> LoopServers:
    """Start Canvas and Credentials on ephemeral ports of ``host`` as a task of ``loop``,
    for a client that runs on that same loop (the live-HTTP simulation transport).

    Real sockets and the same protocol as :func:`run_servers`, without its thread: a
    client and a server thread in one interpreter hand its lock to each other several
    times per request, each hand-over waiting for the OS to run the other thread, which
    on a busy machine cost more than the request. Idle connections are kept as long as
    the loop lives: the loop stands still between requests, and a keep-alive deadline
    that passed meanwhile must not close a connection the client is about to reuse."""
    apps, sockets = _bind(world, services, host, (0, 0))
    servers: list[uvicorn.Server] = [_LoopServer(_config(app, keep_alive=_FOREVER)) for app in apps]
    task = loop.create_task(_serve_all(servers, sockets))
    canvas_url, credentials_url = (_url(host, sock) for sock in sockets)
    return LoopServers(canvas_url, credentials_url, servers, sockets, task)


class _LoopServer(uvicorn.Server):
    """A server sharing its caller's thread leaves the process's signal handlers alone:
    Ctrl-C must still interrupt the caller, not quietly stop the server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


_FOREVER: Final = 10**9  # seconds: as long as the transport, for a keep-alive deadline


def serve_info(world: World, handle: ServerHandle) -> list[str]:
    """What a person needs to point clients at the servers: a never-expiring Canvas token
    of a teacher in every course, a never-expiring Credentials token, and a login."""
    canvas_token = world.tokens.issue(Service.CANVAS, _teacher(world), ttl=math.inf)
    credentials_token = world.tokens.issue(Service.CREDENTIALS, ttl=math.inf)
    world.tokens.add_login(SIM_USERNAME, SIM_PASSWORD)
    return [
        f"canvas {handle.canvas_url} token {canvas_token}",
        f"credentials {handle.credentials_url} token {credentials_token}",
        f"credentials username {SIM_USERNAME} password {SIM_PASSWORD}",
    ]


def serve_forever(
    world: World,
    services: Services,
    canvas_port: int,
    credentials_port: int,
    host: str,
    out: TextIO,
) -> None:
    """Serve until Ctrl-C, after printing :func:`serve_info` (preceded by
    :func:`exposure_warning` when there is one). Ctrl-C at any point stops both servers
    and returns."""
    with (
        run_servers(world, services, canvas_port, credentials_port, host) as handle,
        contextlib.suppress(KeyboardInterrupt),
    ):
        warning = exposure_warning(host)
        for line in ([warning] if warning else []) + serve_info(world, handle):
            print(line, file=out)
        out.flush()
        handle.wait()


def exposure_warning(host: str) -> str | None:
    """The line to print when the servers may be reachable from beyond this machine: the
    tokens serve_info prints grant full access to both services. Only ``localhost`` and
    loopback addresses (127.0.0.0/8, ::1) are quiet; any other name may resolve anywhere."""
    if host == "localhost" or _is_loopback_address(host):
        return None
    return f"warning: {host} binds beyond loopback; whoever reaches it can use these tokens"


def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name, not an address
        return False


# --------------------------------------------------------------------------- internals


class _DroppingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol whose app can hang up the connection (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = _hang_up_on_drop(self.app, self)


def _hang_up_on_drop(app: ASGIApp, protocol: H11Protocol) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        try:
            await app(scope, receive, hold)
        except ConnectionDropped as drop:
            _hang_up(protocol.transport, drop.kind)
            # Wait for uvicorn to notice, so it does not answer for us with a 500.
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        for message in held:
            await send(message)

    return guarded


def _hang_up(transport: asyncio.Transport, kind: str) -> None:
    if kind == "reset":
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


def _config(app: ASGIApp, keep_alive: int = 5) -> uvicorn.Config:
    """No lifespan (the apps have no startup work), no proxy-header rewriting (links must
    name the host the client used), no access log, and no global logging setup;
    ``keep_alive`` is uvicorn's idle-connection timeout (its default, 5 s)."""
    return uvicorn.Config(
        app,
        http=_DroppingH11Protocol,
        lifespan="off",
        proxy_headers=False,
        access_log=False,
        log_config=None,
        log_level="warning",
        timeout_keep_alive=keep_alive,
    )


async def _serve_all(servers: list[uvicorn.Server], sockets: list[socket.socket]) -> None:
    await asyncio.gather(
        *(s.serve(sockets=[sock]) for s, sock in zip(servers, sockets, strict=True))
    )


def _listen(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _url(host: str, sock: socket.socket) -> str:
    """The base URL clients must use verbatim: canvasapi finds its base URL in page links
    by exact string match, and links echo the Host the client sent."""
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _teacher(world: World) -> int:
    """A user with a teacher enrollment in every live course; one is created (and enrolled
    wherever Canvas still allows it) when the world has none."""
    canvas = world.canvas
    live = [c.id for c in canvas.courses.values() if c.workflow_state != "deleted"]
    teaching: dict[int, set[int]] = {}
    for enrollment in canvas.enrollments.values():
        if enrollment.type == "TeacherEnrollment" and enrollment.state not in _GONE:
            teaching.setdefault(enrollment.user_id, set()).add(enrollment.course_id)
    for user_id in sorted(teaching):
        if teaching[user_id] >= set(live):
            return user_id
    teacher = canvas.create_user("Simulated Teacher", "teacher@canvas.test")
    for course_id in live:
        if canvas.courses[course_id].workflow_state != "completed":
            canvas.enroll(teacher, course_id, type="TeacherEnrollment")
    return teacher
