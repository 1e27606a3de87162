"""The HTTP path against the in-memory reference, and the production loop end to end.

The differential test runs one seeded simulation twice, once through
:class:`MemoryTransport` and once through :class:`AsgiTransport` (the production
:class:`adapter.HttpAdapter` over the FastAPI apps), and demands the very same run: the
same trace, the same faults on the same requests, the same final engine state. Any
difference in URLs, bodies, header parsing, status mapping or token refresh between the
two paths shows up as a diverging trace. Real sockets get a shorter run; and
:func:`adapter.run_sync` is run once against served fakes and judged only by what the two
HTTP APIs show, as an operator would.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapter import (
    HttpAdapter,
    OAuthToken,
    RoundEnded,
    SqliteStore,
    apply_links,
    links_to_json,
    load_engine,
    load_links,
    run_sync,
)
from simulators.faults import FaultKind, FaultPlan, FaultRates, SeededChoices
from simulators.harness.invariants import (
    QUIESCENCE,
    SAFETY,
    AssertionView,
    CourseView,
    WorldView,
    check,
    course_freshness,
)
from simulators.harness.simulation import Simulation, TraceEntry, TransportFactory
from simulators.http.serve import ServerHandle, run_servers
from simulators.http.transport import AsgiTransport, LiveHttpTransport
from simulators.services import LogEntry, Services
from simulators.tokens import Service
from simulators.transport import MemoryTransport
from simulators.world import World
from sync_core import (
    AssignmentScore,
    AwardRule,
    CourseCompleted,
    CourseGrade,
    CourseLinked,
    ModuleCompleted,
    Policy,
    SyncEngine,
)

DIFFERENTIAL_SEEDS = range(50)
ACTIVE_SECONDS = 600.0
"""Simulated time under faults per seed before the liveness phase: short, so that fifty
seeds through both transports stay within a minute. The seeds' swarm rates (up to half of
all requests faulted, crashes included; each kind off in half the seeds) give the variety:
about 17,900 faults in all."""
COMPACT = Policy(poll_interval=600.0, backoff_cap=300.0, round_timeout=300.0)
"""Halves the liveness phase (``freshness_bound() + 2 polls``: 1,500 s instead of 3,600 s).
Faults stop before it, so it costs requests without adding any fault to compare."""


@dataclass
class Run:
    trace: list[TraceEntry]
    log: list[LogEntry]
    state: str
    violations: list[str]


def simulate(seed: int, factory: TransportFactory, active: float = ACTIVE_SECONDS) -> Run:
    choices = SeededChoices(seed)
    world, rules = World.small(seed % 4)
    plan = FaultPlan(FaultRates.swarm(choices), choices)
    sim = Simulation(world, plan, policy=COMPACT, transport_factory=factory)
    try:
        for course_id, course_rules in sorted(rules.items()):
            sim.link(world.link_course(course_id, course_rules))
        sim.advance(active)
        violations = check(sim.view(), SAFETY)
        violations += sim.settle()
        violations += check(sim.view(), SAFETY)
        return Run(sim.trace, sim.transport.log, sim.engine.to_json(), [str(v) for v in violations])
    finally:
        close = getattr(sim.transport, "close", None)
        if close is not None:
            close()


def first_difference(a: Sequence[object], b: Sequence[object]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"entry {i}: memory {x!r} vs http {y!r}"
    return f"lengths differ: memory {len(a)} vs http {len(b)}"


@pytest.mark.parametrize("seed", DIFFERENTIAL_SEEDS)
def test_the_http_path_runs_exactly_like_the_memory_path(seed: int) -> None:
    memory = simulate(seed, MemoryTransport)
    http = simulate(seed, AsgiTransport)
    assert http.trace == memory.trace, first_difference(memory.trace, http.trace)
    assert http.log == memory.log, first_difference(memory.log, http.log)
    assert http.state == memory.state
    assert http.violations == memory.violations


@pytest.mark.parametrize("seed", [3, 10])  # swarms with timeouts or lost responses
def test_the_adapter_converges_over_real_sockets(seed: int) -> None:
    run = simulate(seed, LiveHttpTransport, active=900.0)
    assert run.violations == []
    dropped = (FaultKind.TIMEOUT_BEFORE_COMMIT, FaultKind.LOST_RESPONSE)
    assert any(fault in dropped for _, _, fault, _ in run.log)  # servers hung up on it


# -- the production loop, judged through the APIs only ------------------------------------

Json = dict[str, Any]
Served = tuple[World, dict[int, tuple[AwardRule, ...]], ServerHandle]


@pytest.fixture
def served() -> Iterator[Served]:
    world, rules = World.small(2)
    services = Services(world, FaultPlan(FaultRates.none(), SeededChoices(0)))
    with run_servers(world, services) as servers:
        yield world, rules, servers


def test_run_once_converges_a_world_as_seen_through_the_apis(
    served: Served, tmp_path: Path
) -> None:
    world, rules, servers = served
    links_file = tmp_path / "links.json"
    links_file.write_text(
        links_to_json([world.link_course(c, r) for c, r in sorted(rules.items())])
    )
    links = load_links(links_file)
    # Real grants over the sockets: the Canvas token is already stale (renewed before the
    # first request), and the Credentials token is obtained by logging in.
    world.tokens.add_client(Service.CANVAS, "dev-key", "dev-secret")
    canvas_access, canvas_refresh = world.tokens.issue_pair(Service.CANVAS)
    world.tokens.add_login("sync@example.edu", "s3cret")
    canvas_token = OAuthToken.canvas(
        servers.canvas_url,
        canvas_access,
        client_id="dev-key",
        client_secret="dev-secret",
        refresh_token=canvas_refresh,
        expires_at=world.clock.now,
    )
    cred_token = OAuthToken.credentials(
        servers.credentials_url, username="sync@example.edu", password="s3cret"
    )
    auditor = (_bearer(world, Service.CANVAS), _bearer(world, Service.CREDENTIALS))
    with ApiReader(servers.canvas_url, servers.credentials_url, *auditor) as api:
        unsynced = api.view(links, {link.course_id: None for link in links})
    assert check(unsynced, QUIESCENCE)  # the reader sees what is wrong before a sync
    engine = SyncEngine()
    apply_links(engine, links)

    before = world.clock.now

    async def sync() -> list[RoundEnded]:
        def clock() -> float:
            return world.clock.now  # moved only by the requests' latency: one round per course

        async with HttpAdapter(
            servers.canvas_url, canvas_token, servers.credentials_url, cred_token, clock=clock
        ) as adapter:
            return await run_sync(adapter, engine, once=True, clock=clock)

    ended = asyncio.run(sync())
    assert [(e.course_id, e.ok) for e in ended] == [(link.course_id, True) for link in links]
    assert canvas_token.access_token != canvas_access and cred_token.access_token is not None

    with ApiReader(servers.canvas_url, servers.credentials_url, *auditor) as api:
        synced = {s.course_id: s.last_success_at for s in engine.status()}
        view = api.view(links, synced)
    assert check(view, {**SAFETY, **QUIESCENCE}) == []
    assert course_freshness(view, since=before, bound=0.0) == []
    for course in view.courses:  # the readers' judgement agrees with the world's oracle,
        assert course.earned_now == frozenset(world.earned_now(course.course_id))
        assert course.earned_now  # and there was something to award in every course


class ApiReader:
    """Builds a :class:`WorldView` from HTTP reads alone: the course, enrolments, users,
    grades, assignments, submissions, quizzes and module progress from Canvas; members,
    leaderboard and assertions from Credentials. Award rules are judged here from those
    reads without the engine's rule code, so an engine bug cannot hide behind its own
    judgement. Nothing changes Canvas during the sync, so "ever earned" is "earned now"."""

    def __init__(
        self, canvas: str, cred: str, canvas_auth: dict[str, str], cred_auth: dict[str, str]
    ) -> None:
        self.canvas = httpx.Client(base_url=canvas, headers=canvas_auth)
        self.cred = httpx.Client(base_url=cred, headers=cred_auth)

    def __enter__(self) -> ApiReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.canvas.close()
        self.cred.close()

    def view(self, links: list[CourseLinked], synced: dict[int, float | None]) -> WorldView:
        courses = [self._course(link, synced[link.course_id]) for link in links]
        owners: dict[str, int] = {}
        for link in links:
            for user in self._canvas_list(link.course_id, "users", STUDENTS_AND_EMAILS):
                if user.get("email"):
                    owners[str(user["email"]).lower()] = int(user["id"])
        assertions = []
        for badge in sorted({rule.badge_class for link in links for rule in link.rules}):
            url = f"/v2/badgeclasses/{badge}/assertions?include_revoked=true&num=500"
            for record in _pages(self.cred, url):
                recipient = record["recipient"]
                email = str(recipient.get("plaintextIdentity") or recipient["identity"]).lower()
                assertions.append(AssertionView(badge, email, record["revoked"] is True))
        now = max((t for t in synced.values() if t is not None), default=0.0)
        return WorldView(now, tuple(courses), tuple(assertions), owners)

    def _canvas_list(self, course_id: int, resource: str, query: str = "") -> list[Json]:
        return _pages(self.canvas, f"/api/v1/courses/{course_id}/{resource}?per_page=100{query}")

    def _course(self, link: CourseLinked, synced: float | None) -> CourseView:
        cid = link.course_id
        enrollments = self._canvas_list(cid, "enrollments", STUDENT_ROWS)
        users = self._canvas_list(cid, "users", STUDENTS_AND_EMAILS)
        emails = {int(u["id"]): _lower(u.get("email")) for u in users}
        concluded = self.canvas.get(f"/api/v1/courses/{cid}").json()["workflow_state"] in (
            "completed",
            "deleted",
        )
        active = (
            set()
            if concluded
            else {int(e["user_id"]) for e in enrollments if e["enrollment_state"] == "active"}
        )
        earning = {int(e["user_id"]) for e in enrollments}
        group = f"/v2/issuers/{link.issuer_id}/recipient-groups/{link.group_id}"
        members = {
            int(m["canvasUserId"]): str(m["email"])
            for m in _pages(self.cred, f"{group}/members?num=500")
        }
        board = tuple(
            (int(r["canvasUserId"]), int(r["badges"]))
            for r in _pages(self.cred, f"{group}/leaderboard")
        )
        earned = frozenset(self._earned(link, enrollments, earning))
        return CourseView(
            course_id=cid,
            badge_classes=frozenset(rule.badge_class for rule in link.rules),
            active_students={uid: emails.get(uid) for uid in active},
            earning_students={uid: emails.get(uid) for uid in earning},
            earned_now=earned,
            ever_earned=earned,
            members=members,
            leaderboard=board,
            last_synced=synced,
        )

    def _earned(
        self, link: CourseLinked, enrollments: list[Json], students: set[int]
    ) -> set[tuple[int, str]]:
        cid = link.course_id
        facts = CourseFacts(
            grades={
                int(e["user_id"]): (e.get("grades") or {}).get("current_score") for e in enrollments
            },
            assignments={int(a["id"]): a for a in self._canvas_list(cid, "assignments")},
            quizzes={
                int(q["id"]): q.get("assignment_id") for q in self._canvas_list(cid, "quizzes")
            },
            scores={
                (int(s["user_id"]), int(s["assignment_id"])): float(s["score"])
                for s in self._canvas_list(cid, "students/submissions", "&student_ids[]=all")
                if s.get("score") is not None and s.get("excused") is not True
            },
            modules={
                uid: self._canvas_list(cid, "modules", f"&student_id={uid}&include[]=items")
                for uid in sorted(students)
            },
        )
        return {
            (uid, rule.badge_class)
            for rule in link.rules
            for uid in students
            if facts.meets(rule, uid)
        }


STUDENT_ROWS = "&type[]=StudentEnrollment&state[]=active&state[]=completed"
STUDENTS_AND_EMAILS = (
    "&enrollment_type[]=student&enrollment_state[]=active&enrollment_state[]=completed"
)


def _pages(client: httpx.Client, url: str) -> list[Json]:
    """Every record of a list, following ``rel="next"`` links; Badgr wraps its lists in
    a ``result`` envelope, Canvas does not."""
    records: list[Json] = []
    next_url: str | None = url
    while next_url is not None:
        response = client.get(next_url)
        response.raise_for_status()
        body = response.json()
        records += body["result"] if isinstance(body, dict) else body
        next_url = response.links.get("next", {}).get("url")
    return records


def _bearer(world: World, service: Service) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens.issue(service)}"}


def _lower(email: object) -> str | None:
    return email.lower() if isinstance(email, str) and email else None


@dataclass(frozen=True)
class CourseFacts:
    """One course's Canvas reads, and the award rules judged over them as
    ``sync_core/rules.py``'s docstrings define them."""

    grades: dict[int, object]
    assignments: dict[int, Json]
    quizzes: dict[int, object]
    scores: dict[tuple[int, int], float]
    modules: dict[int, list[Json]]

    def meets(self, rule: AwardRule, uid: int) -> bool:
        if isinstance(rule, CourseGrade):
            grade = self.grades.get(uid)
            return isinstance(grade, int | float) and grade >= rule.min_percent
        modules = self.modules[uid]
        if isinstance(rule, ModuleCompleted):
            return any(m["id"] == rule.module_id and m["state"] == "completed" for m in modules)
        if isinstance(rule, CourseCompleted):
            required = [
                m for m in modules if any(i.get("completion_requirement") for i in m["items"])
            ]
            return bool(required) and all(m["state"] == "completed" for m in required)
        if isinstance(rule, AssignmentScore):
            return self._scored(uid, rule.assignment_id, rule.min_points, rule.min_percent)
        assignment = rule.quiz_id if rule.new_quizzes else self.quizzes.get(rule.quiz_id)
        return isinstance(assignment, int) and self._scored(uid, assignment, None, rule.min_percent)

    def _scored(
        self, uid: int, assignment_id: int, min_points: float | None, min_percent: float | None
    ) -> bool:
        assignment = self.assignments.get(assignment_id)
        score = self.scores.get((uid, assignment_id))
        if assignment is None or score is None:
            return False
        if min_points is not None:
            return score >= min_points
        points = assignment.get("points_possible")
        if not isinstance(points, int | float) or points <= 0:
            return False
        return score >= points * (min_percent or 0.0) / 100.0


def test_credsync_sync_once_against_credsync_serve_converges(tmp_path: Path) -> None:
    """The two commands as a user runs them, in separate processes over loopback; then
    every invariant is checked through the HTTP APIs alone."""
    links_file, state_file = tmp_path / "links.json", tmp_path / "state.db"
    cli = [sys.executable, "-c", "import sys; from scenarios.cli import main; sys.exit(main())"]
    serve = subprocess.Popen(
        [*cli, "serve", "--seed", "3", "--faults", "none", "--links", str(links_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout is not None
        announced = [serve.stdout.readline().split() for _ in range(2)]
        (_, canvas_url, _, canvas_token), (_, cred_url, _, cred_token) = announced
        sync = subprocess.run(
            [
                *cli,
                "sync",
                "--canvas",
                canvas_url,
                "--canvas-token",
                canvas_token,
                "--credentials",
                cred_url,
                "--credentials-token",
                cred_token,
                "--links",
                str(links_file),
                "--state",
                str(state_file),
                "--once",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert sync.returncode == 0, sync.stderr
        links = load_links(links_file)
        assert [line.split(":")[0] for line in sync.stdout.splitlines()] == [
            f"course {link.course_id}" for link in links
        ]
        with SqliteStore(state_file) as store:
            assert load_engine(store).status()[0].last_success_at
        auth = (
            {"Authorization": f"Bearer {canvas_token}"},
            {"Authorization": f"Bearer {cred_token}"},
        )
        with ApiReader(canvas_url, cred_url, *auth) as api:
            view = api.view(links, {link.course_id: None for link in links})
        assert check(view, {**SAFETY, **QUIESCENCE}) == []
        assert all(course.earned_now for course in view.courses)  # awards were due
    finally:
        serve.terminate()
        serve.wait(timeout=30)
