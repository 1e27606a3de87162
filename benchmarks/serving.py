"""Figure 7: the fake Canvas over real HTTP, and what the semester world weighs.

Enrollment pages (100 rows) are fetched from the simulated Canvas under uvicorn on
loopback, following its ``Link`` headers as a client does, and compared with a minimal
FastAPI endpoint serving the very same page bodies, precomputed, from the same kind of
server in the same run: the ratio is what the fake's fidelity (auth, filters, pagination,
rate limit, fault hooks) costs per page. Peak memory is measured in a fresh interpreter,
so nothing this process has loaded counts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response

from benchmarks.measure import Goal, Result, measure
from simulators.faults import FaultPlan, FaultRates, SeededChoices
from simulators.http.serve import run_servers
from simulators.services import Services
from simulators.tokens import Service
from simulators.world import World
from simulators.worlds import CourseSpec, build
from sync_core.wire import parse_link_header

PER_PAGE = 100


@contextmanager
def minimal_server(pages: list[bytes]) -> Iterator[str]:
    """A FastAPI app that returns ``pages[n]`` as is, under uvicorn on an ephemeral port."""
    app = FastAPI()

    @app.get("/pages/{n}")
    def page(n: int) -> Response:
        return Response(pages[n], media_type="application/json")

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", access_log=False, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="bench-minimal", daemon=True)
    thread.start()
    try:
        while not server.started:  # the port is known only once uvicorn has bound it
            thread.join(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


def _fake_pages(client: httpx.Client, first: str, world: World) -> list[bytes]:
    """Every page of the list, following ``rel="next"``. Virtual time moves a minute first,
    so Canvas's rate limit (a leaky bucket on the virtual clock) has drained: this measures
    serving, not throttling."""
    world.clock.advance(60)
    bodies = []
    url: str | None = first
    while url is not None:
        response = client.get(url)
        response.raise_for_status()
        bodies.append(response.content)
        url = parse_link_header(response.headers.get("link", "")).get("next")
    return bodies


def page_rate(quick: bool) -> Result:
    students, passes, repeats = (500, 2, 3) if quick else (2000, 4, 5)
    spec = CourseSpec(students=students, assignments=0, modules=0)
    world, _ = build((spec,), 1)
    (course_id,) = world.canvas.courses
    token = world.tokens.issue(Service.CANVAS, ttl=float("inf"))
    services = Services(world, FaultPlan(FaultRates.none(), SeededChoices(1)))
    headers = {"Authorization": f"Bearer {token}"}
    with (
        run_servers(world, services) as handle,
        httpx.Client(headers=headers, timeout=30) as client,
    ):
        first = (
            f"{handle.canvas_url}/api/v1/courses/{course_id}/enrollments"
            f"?type[]=StudentEnrollment&per_page={PER_PAGE}"
        )
        pages = _fake_pages(client, first, world)
        assert all(len(json.loads(p)) <= PER_PAGE for p in pages)
        with minimal_server(pages) as minimal:

            def fake() -> Callable[[], object]:
                return lambda: [_fake_pages(client, first, world) for _ in range(passes)]

            def plain() -> Callable[[], object]:
                urls = [f"{minimal}/pages/{n}" for n in range(len(pages))]
                return lambda: [client.get(u).content for _ in range(passes) for u in urls]

            cmp = measure(fake, plain, repeats)
    count = passes * len(pages)
    return Result(
        "7a",
        f"fake Canvas enrollment pages/s ({PER_PAGE} rows) vs a minimal FastAPI endpoint",
        cmp.baseline / cmp.subject,
        Goal(">=", 0.5),
        {
            "fake_pages_per_s": count / cmp.subject,
            "minimal_pages_per_s": count / cmp.baseline,
            "pages": count,
            "repeats": repeats,
        },
    )


_PEAK = """
import resource, httpx
from simulators.faults import FaultPlan, FaultRates, SeededChoices
from simulators.http.serve import run_servers
from simulators.services import Services
from simulators.tokens import Service
from simulators.worlds import load_world
world, _ = load_world("semester", 11)
token = world.tokens.issue(Service.CANVAS, ttl=float("inf"))
services = Services(world, FaultPlan(FaultRates.none(), SeededChoices(11)))
with run_servers(world, services) as handle, httpx.Client(
    headers={"Authorization": f"Bearer {token}"}
) as client:
    for course_id in sorted(world.canvas.courses):
        url = f"{handle.canvas_url}/api/v1/courses/{course_id}/enrollments?per_page=100"
        client.get(url).raise_for_status()
try:  # Linux: this process image's own peak (ru_maxrss would carry the parent's over exec)
    with open("/proc/self/status") as status:
        print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
except OSError:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory() -> Result:
    """Peak resident memory of a fresh interpreter that builds the semester world, serves
    it under uvicorn and answers a read of every course, in KiB.

    On Linux this is ``VmHWM`` from ``/proc/self/status``, not ``ru_maxrss``: Linux keeps
    the larger of the old and new peak across ``execve``, so a child started by a benchmark
    process that has grown to a gigabyte (figure 2's 10,000-student course) would report the
    parent's peak as its own."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK], capture_output=True, text=True, check=True
    ).stdout
    megabytes = int(out.split()[-1]) / 1024
    return Result(
        "7b",
        "peak memory: the semester world served under uvicorn (fresh interpreter)",
        megabytes,
        Goal("<", 300, " MB"),
        {"includes": "the interpreter, FastAPI, uvicorn and httpx"},
    )


def figures(quick: bool) -> list[Result]:
    return [page_rate(quick), peak_memory()]
