"""Who may call what on the fakes: every route but the token grants needs a live token;
a Credentials token scoped to some issuers meets Badgr's 404 everywhere else; a student's
Canvas token reads its own submissions and progress and nobody else's.

Each rule is checked by a helper that returns what leaked (an empty list when nothing
did), over HTTP through the FastAPI apps, with routes enumerated from each app's own
``/openapi.json`` so a route added later is covered without editing this file. Each helper
is also run with the rule monkeypatched away, to show it notices the leak.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import scenarios.cli as cli
import simulators.http.serve
from simulators import FaultPlan, FaultRates, SeededChoices, Service, Services, World
from simulators.canvas.api import INVALID_TOKEN, NO_CREDENTIALS, NOT_AUTHORIZED, CanvasApi
from simulators.credentials.api import CredentialsApi
from simulators.http.apps import (
    CANVAS_ENDPOINTS,
    CANVAS_TOKEN_PATH,
    CREDENTIALS_ENDPOINTS,
    CREDENTIALS_TOKEN_PATH,
    canvas_app,
    credentials_app,
)
from simulators.http.serve import ServerHandle, exposure_warning
from simulators.tokens import TokenStore

COURSE = 101
"""World.small's course with modules, completion requirements and submissions."""
TOKEN_PATHS = frozenset({CANVAS_TOKEN_PATH, CREDENTIALS_TOKEN_PATH})
NO_TOKEN_ENVELOPE = {
    "status": {"success": False, "description": "no valid auth token found"},
    "validationErrors": [],
    "fieldErrors": {},
    "result": [],
}
NOT_FOUND_ENVELOPE = {
    "status": {"success": False, "description": "entity not found or insufficient privileges"},
    "validationErrors": [],
    "fieldErrors": {},
    "result": [],
}
Route = tuple[str, str]
"""(method, path template) as ``/openapi.json`` lists it."""


def call(
    app: FastAPI, method: str, url: str, token: str | None = None, json: object = None
) -> httpx.Response:
    """One request to ``app`` in process; ``json`` is sent for every method that takes a
    body, so an unauthenticated write is refused for its token, not for its body."""

    async def send() -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
            return await client.request(method, url, headers=headers, json=json)

    return asyncio.run(send())


def routes(app: FastAPI) -> list[Route]:
    """Every (method, path) the app documents, token grants excepted."""
    paths = call(app, "GET", "/openapi.json").json()["paths"]
    return sorted(
        (method.upper(), path)
        for path, operations in paths.items()
        if path not in TOKEN_PATHS
        for method in operations
    )


def fill(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


@dataclass
class Sim:
    world: World
    canvas: FastAPI
    cred: FastAPI
    canvas_ids: dict[str, str]
    student: int
    other_student: int
    own: dict[str, str]
    """Path values of entities under the issuer the scoped token may see."""
    foreign: dict[str, str]
    """The same kinds of entity under another issuer."""


@pytest.fixture
def sim() -> Iterator[Sim]:
    world, rules = World.small(1)
    for course_id, course_rules in sorted(rules.items()):
        world.link_course(course_id, course_rules)
    services = Services(world, FaultPlan(FaultRates.none(), SeededChoices(1)))
    canvas, creds = world.canvas, world.credentials
    submitters = sorted({s.user_id for s in canvas.submissions_in(COURSE)})
    student, other = submitters[0], submitters[1]
    assignment = next(a.id for a in canvas.assignments_in(COURSE) if a.published)
    canvas_ids = {
        "course_id": str(COURSE),
        "user_id": str(student),
        "assignment_id": str(assignment),
        "module_id": str(canvas.modules_in(COURSE)[0].id),
    }
    link = world.links[COURSE]
    foreign_issuer = creds.create_issuer("Another Issuer", "other@example.edu")
    foreign_badge = creds.create_badge_class(foreign_issuer, "Foreign badge")
    foreign_group = creds.create_group(foreign_issuer, COURSE, "Foreign group")
    for group_id in (link.group_id, foreign_group):
        creds.upsert_member(group_id, student, "s@example.edu", "S", [])

    def entities(issuer: str, badge: str, group: str) -> dict[str, str]:
        return {
            "issuer_id": issuer,
            "badge_id": badge,
            "assertion_id": creds.award(badge, "ada@example.edu").entity_id,
            "group_id": group,
            "user_id": str(student),
        }

    own = entities(link.issuer_id, link.rules[0].badge_class, link.group_id)
    foreign = entities(foreign_issuer, foreign_badge, foreign_group)
    yield Sim(
        world,
        canvas_app(services),
        credentials_app(services),
        canvas_ids,
        student,
        other,
        own,
        foreign,
    )


# --------------------------------------------------------------------------- 401 everywhere


def canvas_401(response: httpx.Response, body: object) -> bool:
    return (
        response.status_code == 401
        and response.json() == body
        and response.headers.get("www-authenticate") == 'Bearer realm="canvas-lms"'
    )


def unauthenticated_leaks(sim: Sim) -> list[str]:
    """Every route of both apps, without a token, with a garbage one and with an expired
    one (the virtual clock moved past its lifetime): what did not get its service's 401."""
    tokens = sim.world.tokens
    expired = {service: tokens.issue(service) for service in Service}
    sim.world.clock.advance(max(s.ttl for s in Service) + 1)
    leaks: list[str] = []
    canvas_cases = [
        ("no token", None, NO_CREDENTIALS),
        ("garbage", "garbage-token", INVALID_TOKEN),
        ("expired", expired[Service.CANVAS], INVALID_TOKEN),
    ]
    for method, template in routes(sim.canvas):
        url = fill(template, sim.canvas_ids)
        for case, token, body in canvas_cases:
            if not canvas_401(call(sim.canvas, method, url, token), body):
                leaks.append(f"canvas {method} {url} with {case}")
    cred_cases = [
        ("no token", None),
        ("garbage", "garbage-token"),
        ("expired", expired[Service.CREDENTIALS]),
    ]
    for method, template in routes(sim.cred):
        url = fill(template, sim.own)
        for case, token in cred_cases:
            answer = call(sim.cred, method, url, token, json={})
            if answer.status_code != 401 or answer.json() != NO_TOKEN_ENVELOPE:
                leaks.append(f"credentials {method} {url} with {case}")
    return leaks


def test_every_route_but_the_grants_needs_a_live_token(sim: Sim) -> None:
    declared = {(e.method, e.path) for e in (*CANVAS_ENDPOINTS, *CREDENTIALS_ENDPOINTS)}
    assert set(routes(sim.canvas)) | set(routes(sim.cred)) == declared
    assert unauthenticated_leaks(sim) == []
    # The same paths answer a live token, so the 401s above are the token's doing.
    canvas_token = sim.world.tokens.issue(Service.CANVAS)
    for method, template in routes(sim.canvas):
        url = fill(template, sim.canvas_ids)
        assert call(sim.canvas, method, url, canvas_token).status_code == 200, url
    cred_token = sim.world.tokens.issue(Service.CREDENTIALS)
    for method, template in routes(sim.cred):
        url = fill(template, sim.own)
        assert call(sim.cred, method, url, cred_token, json={}).status_code != 401, url


def test_the_401_check_notices_a_token_store_that_ignores_expiry(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    def immortal(self: TokenStore, service: Service, value: str | None) -> bool:
        token = self._tokens.get(value) if value is not None else None
        return token is not None and token.service is service

    monkeypatch.setattr(TokenStore, "validate", immortal)
    leaks = unauthenticated_leaks(sim)
    assert leaks and all(leak.endswith("with expired") for leak in leaks)
    assert {leak.split()[0] for leak in leaks} == {"canvas", "credentials"}


def test_the_401_check_notices_a_token_store_that_accepts_anything(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TokenStore, "validate", lambda self, service, value: True)
    cases = {(leak.split()[0], leak.rsplit(" with ", 1)[1]) for leak in unauthenticated_leaks(sim)}
    # Canvas still refuses a request with no token at all before asking the store.
    assert cases == {
        ("canvas", "garbage"),
        ("canvas", "expired"),
        ("credentials", "no token"),
        ("credentials", "garbage"),
        ("credentials", "expired"),
    }


# --------------------------------------------------------------------------- issuer scope


def scope_leaks(sim: Sim, token: str) -> list[str]:
    """What an issuer-scoped token could see or change outside its issuers: every routed
    entity of another issuer must be Badgr's 404, the lists must leave it out, and a
    batch revoke must not touch it."""
    leaks = []
    for method, template in routes(sim.cred):
        if "{" not in template:
            continue
        url = fill(template, sim.foreign)
        answer = call(sim.cred, method, url, token, json={})
        if answer.status_code != 404 or answer.json() != NOT_FOUND_ENVELOPE:
            leaks.append(f"{method} {url}: {answer.status_code}")
    issuers = call(sim.cred, "GET", "/v2/issuers", token).json()["result"]
    if sim.foreign["issuer_id"] in {i["entityId"] for i in issuers}:
        leaks.append("GET /v2/issuers lists the foreign issuer")
    badges = call(sim.cred, "GET", "/v2/badgeclasses", token).json()["result"]
    if sim.foreign["issuer_id"] in {b["issuer"] for b in badges}:
        leaks.append("GET /v2/badgeclasses lists a foreign badge class")
    revoke = [{"entityId": sim.foreign["assertion_id"], "revocationReason": "test"}]
    answer = call(sim.cred, "POST", "/v2/assertions/revoke", token, json=revoke)
    if answer.json()["result"][0]["revoked"]:
        leaks.append("POST /v2/assertions/revoke revoked a foreign award")
    return leaks


def own_issuer_failures(sim: Sim, token: str) -> list[str]:
    """The scoped token still works on its own issuer: every read succeeds, its issuer is
    listed, and it can award and revoke."""
    failures = []
    for method, template in routes(sim.cred):
        if method == "GET":
            url = fill(template, sim.own)
            answer = call(sim.cred, method, url, token)
            if answer.status_code != 200:
                failures.append(f"GET {url}: {answer.status_code}")
    issuers = call(sim.cred, "GET", "/v2/issuers", token).json()["result"]
    if [i["entityId"] for i in issuers] != [sim.own["issuer_id"]]:
        failures.append("GET /v2/issuers does not list its issuer alone")
    award = {"recipient": {"identity": "bob@example.edu"}}
    url = f"/v2/badgeclasses/{sim.own['badge_id']}/assertions"
    awarded = call(sim.cred, "POST", url, token, json=award)
    if awarded.status_code != 201:
        return [*failures, f"POST {url}: {awarded.status_code}"]
    revoke = [{"entityId": awarded.json()["result"][0]["entityId"], "revocationReason": "test"}]
    revoked = call(sim.cred, "POST", "/v2/assertions/revoke", token, json=revoke)
    if not revoked.json()["result"][0]["revoked"]:
        failures.append("POST /v2/assertions/revoke of its own award")
    return failures


def test_an_issuer_scoped_token_meets_404_beyond_its_issuer(sim: Sim) -> None:
    token = sim.world.tokens.issue(Service.CREDENTIALS, issuers=frozenset({sim.own["issuer_id"]}))
    assert scope_leaks(sim, token) == []
    assert own_issuer_failures(sim, token) == []
    renewed = sim.world.tokens.refresh(token)  # what the in-memory transport does
    assert scope_leaks(sim, renewed) == [] and own_issuer_failures(sim, renewed) == []
    # An unscoped token reaches every foreign route and the lists and revokes the award:
    # the 404s above are the scope's doing.
    routed = [r for r in routes(sim.cred) if "{" in r[1]]
    unscoped = sim.world.tokens.issue(Service.CREDENTIALS)
    assert len(scope_leaks(sim, unscoped)) == len(routed) + 3


def test_a_login_that_is_staff_of_one_issuer_gets_scoped_tokens_through_every_grant(
    sim: Sim,
) -> None:
    sim.world.tokens.add_login("staff@x.edu", "pw", issuers=frozenset({sim.own["issuer_id"]}))

    async def grant(form: dict[str, str]) -> dict[str, Any]:
        transport = httpx.ASGITransport(app=sim.cred)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
            answer = await client.post(CREDENTIALS_TOKEN_PATH, data=form)
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    first = asyncio.run(grant({"username": "staff@x.edu", "password": "pw"}))
    assert scope_leaks(sim, first["access_token"]) == []
    refreshed = asyncio.run(  # Badgr rotates: the first pair dies here
        grant({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    )
    assert scope_leaks(sim, refreshed["access_token"]) == []
    assert own_issuer_failures(sim, refreshed["access_token"]) == []


def test_the_scope_check_notices_a_handler_that_forgets_the_scope(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = sim.world.tokens.issue(Service.CREDENTIALS, issuers=frozenset({sim.own["issuer_id"]}))
    monkeypatch.setattr(CredentialsApi, "_sees", lambda self, request, issuer_id: True)
    leaks = scope_leaks(sim, token)
    assert any("/v2/assertions/revoke revoked" in leak for leak in leaks)
    assert any(leak.startswith("GET /v2/issuers lists") for leak in leaks)
    assert any(f"/recipient-groups/{sim.foreign['group_id']}/" in leak for leak in leaks)


# --------------------------------------------------------------------------- students


def student_leaks(sim: Sim, token: str) -> list[str]:
    """What a student's token read of another student's submissions or progress."""
    base = f"/api/v1/courses/{COURSE}"
    other, leaks = sim.other_student, []

    def refused(url: str, params: dict[str, str] | None = None) -> None:
        answer = call(sim.canvas, "GET", url + _query(params), token)
        if answer.status_code != 403 or answer.json() != NOT_AUTHORIZED:
            leaks.append(f"{url} {params or ''}: {answer.status_code}")

    refused(f"{base}/students/submissions", {"student_ids[]": str(other)})
    refused(f"{base}/assignments/{sim.canvas_ids['assignment_id']}/submissions")
    refused(f"{base}/users/{other}/progress")
    refused(f"{base}/modules", {"student_id": str(other)})
    refused(f"{base}/modules/{sim.canvas_ids['module_id']}/items", {"student_id": str(other)})
    for params in ({"student_ids[]": "all", "per_page": "100"}, {"per_page": "100"}):
        answer = call(sim.canvas, "GET", f"{base}/students/submissions" + _query(params), token)
        owners = {row["user_id"] for row in answer.json()}
        if owners != {sim.student}:
            leaks.append(f"students/submissions {params} returned the rows of {sorted(owners)}")
    return leaks


def _query(params: dict[str, str] | None) -> str:
    return "" if not params else "?" + str(httpx.QueryParams(params))


def test_a_student_reads_only_its_own_submissions_and_progress(sim: Sim) -> None:
    token = sim.world.tokens.issue(Service.CANVAS, sim.student)
    assert student_leaks(sim, token) == []
    base = f"/api/v1/courses/{COURSE}"
    for who in ("self", str(sim.student)):
        assert call(sim.canvas, "GET", f"{base}/users/{who}/progress", token).status_code == 200
    own = call(sim.canvas, "GET", f"{base}/students/submissions?student_ids[]={sim.student}", token)
    assert own.status_code == 200 and {r["user_id"] for r in own.json()} == {sim.student}
    modules = call(sim.canvas, "GET", f"{base}/modules?student_id={sim.student}", token)
    assert modules.status_code == 200 and "state" in modules.json()[0]
    # The course's teacher reads everyone's: the refusals above are the student's alone.
    teacher = next(
        e.user_id for e in sim.world.canvas.enrollments_in(COURSE) if e.type == "TeacherEnrollment"
    )
    # Seven: the five refusals, "all" returning everyone, and the teacher's own (empty)
    # rows for an omitted student_ids.
    assert len(student_leaks(sim, sim.world.tokens.issue(Service.CANVAS, teacher))) == 7


def test_the_student_check_notices_a_handler_that_lets_students_read_everything(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = sim.world.tokens.issue(Service.CANVAS, sim.student)
    monkeypatch.setattr(CanvasApi, "_readable_students", lambda self, course, request: None)
    leaks = student_leaks(sim, token)
    # All five refusals fail, and "all" returns everyone; an omitted student_ids still
    # means the caller alone, which is no leak.
    assert len(leaks) == 6 and "'student_ids[]': 'all'" in leaks[-1]


# --------------------------------------------------------------------------- credsync serve


def serve_output(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[list[str], list[str]]:
    """``credsync serve ARGV`` through the real CLI and ``serve_forever``, with the socket
    binding replaced, so no interface is ever opened: (hosts asked to bind, lines printed)."""
    bound: list[str] = []

    def fake_run_servers(
        world: World, services: Services, canvas_port: int, credentials_port: int, host: str
    ) -> ServerHandle:
        bound.append(host)
        done = threading.Thread(target=lambda: None)
        done.start()  # wait() and stop() join it at once: "Ctrl-C" came immediately
        return ServerHandle(f"http://{host}:1", f"http://{host}:2", [], done, [])

    monkeypatch.setattr(simulators.http.serve, "run_servers", fake_run_servers)
    assert cli.main(["serve", *argv]) == 0
    return bound, capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "canvas.example.edu"])
def test_serve_warns_first_naming_a_host_beyond_loopback(
    host: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bound, lines = serve_output(["--host", host], monkeypatch, capsys)
    assert bound == [host]
    assert lines[0].startswith(f"warning: {host} binds beyond loopback")
    assert lines[1].startswith("canvas ")


@pytest.mark.parametrize(
    ("argv", "host"),
    [([], "127.0.0.1"), (["--host", "127.0.0.2"], "127.0.0.2"), (["--host", "::1"], "::1")],
)
def test_serve_binds_loopback_by_default_and_is_quiet_there(
    argv: list[str], host: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bound, lines = serve_output(argv, monkeypatch, capsys)
    assert bound == [host] and exposure_warning(host) is None
    assert len(lines) == 3 and lines[0].startswith("canvas ")
