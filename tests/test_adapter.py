"""The production HTTP adapter and its sync loop, against scripted HTTP answers.

``httpx.MockTransport`` plays both services, so every test sees exactly the requests the
adapter sent (method, URL, body, token) and controls every answer, including the ones a real
server gives only under load (throttles, 5xx, dropped connections, expired tokens).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import httpx
import pytest

from adapter import (
    REFRESH_MARGIN,
    HttpAdapter,
    LinksError,
    OAuthToken,
    RoundEnded,
    SqliteStore,
    apply_links,
    links_to_json,
    load_engine,
    load_links,
    run_sync,
    summary,
    wire_response,
)
from simulators.faults import FaultPlan, FaultRates, SeededChoices
from simulators.transport import MemoryTransport
from simulators.world import World
from sync_core import (
    AssignmentScore,
    CanvasList,
    Command,
    CourseGrade,
    CourseLinked,
    CredentialsList,
    Event,
    Failure,
    FetchCanvasPage,
    FetchCredentialsPage,
    IssueAssertion,
    LeaderboardEntry,
    PageReceived,
    PublishLeaderboard,
    RemoveMember,
    RequestFailed,
    SyncEngine,
    Tick,
    UpsertMember,
    WriteAcknowledged,
)

CANVAS = "https://canvas.example.edu"
CRED = "https://api.badgr.test"
T0 = 1_756_684_800.0

READ = FetchCanvasPage(1, 7, CanvasList.ENROLLMENTS, (("state[]", "active"), ("per_page", "100")))
CRED_READ = FetchCredentialsPage(2, 7, CredentialsList.MEMBERS, "ISS", "GRP", None, ())
ISSUE = IssueAssertion(3, 7, "BC 1", 9, "ada@x.edu")
UPSERT = UpsertMember(4, 7, "ISS", "GRP", 9, "ada@x.edu", "Ada", ("BC 1",))
REMOVE = RemoveMember(5, 7, "ISS", "GRP", 9)
PUBLISH = PublishLeaderboard(6, 7, "ISS", "GRP", (LeaderboardEntry(9, 1),))
WRITES: list[Command] = [ISSUE, UPSERT, REMOVE, PUBLISH]

T = TypeVar("T")
Handler = Callable[[httpx.Request], httpx.Response]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedServices:
    """A scripted pair of services: answers API calls with ``answer`` and token grants
    with numbered tokens, recording every request."""

    def __init__(
        self, answer: Handler | None = None, refused: frozenset[str] = frozenset()
    ) -> None:
        self.answer = answer or (lambda request: httpx.Response(200, json=[]))
        self.refused = refused  # refresh tokens the grant endpoint no longer accepts
        self.requests: list[httpx.Request] = []
        self.grants: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path in ("/login/oauth2/token", "/o/token"):
            form = dict(parse_qsl(request.content.decode()))
            self.grants.append(form)
            if form.get("refresh_token") in self.refused:
                return httpx.Response(400, json={"error": "invalid_grant"})
            body: dict[str, object] = {
                "access_token": f"fresh-{len(self.grants)}",
                "expires_in": 3600 if request.url.path.startswith("/login") else 86400,
            }
            if request.url.path == "/o/token":
                body["refresh_token"] = f"rotated-{len(self.grants)}"
            return httpx.Response(200, json=body)
        return self.answer(request)

    @property
    def api_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if not r.url.path.endswith(("/oauth2/token", "/o/token"))]


def canvas_token(expires_at: float = T0 + 3600) -> OAuthToken:
    return OAuthToken.canvas(
        CANVAS,
        "canvas-secret-0",
        client_id="10000000000001",
        client_secret="client-secret-xyz",
        refresh_token="canvas-refresh-abc",
        expires_at=expires_at,
    )


def cred_token(expires_at: float = T0 + 86400) -> OAuthToken:
    return OAuthToken.credentials(
        CRED, "cred-secret-0", refresh_token="cred-refresh-abc", expires_at=expires_at
    )


def adapter_for(
    services: ScriptedServices,
    clock: Clock | None = None,
    canvas: OAuthToken | None = None,
    cred: OAuthToken | None = None,
) -> HttpAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(services))
    return HttpAdapter(
        CANVAS,
        canvas or canvas_token(),
        CRED,
        cred or cred_token(),
        clock=clock or Clock(),
        client=client,
    )


def execute(adapter: HttpAdapter, *commands: Command) -> list[Event]:
    async def go() -> list[Event]:
        return [await adapter.execute(c) for c in commands]

    return run(go())


# -- request shapes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "method", "url", "body", "token"),
    [
        (
            READ,
            "GET",
            f"{CANVAS}/api/v1/courses/7/enrollments?state%5B%5D=active&per_page=100",
            None,
            "canvas-secret-0",
        ),
        (
            CRED_READ,
            "GET",
            f"{CRED}/v2/issuers/ISS/recipient-groups/GRP/members?num=500",
            None,
            "cred-secret-0",
        ),
        (
            ISSUE,
            "POST",
            f"{CRED}/v2/badgeclasses/BC%201/assertions",
            {
                "recipient": {"identity": "ada@x.edu", "type": "email"},
                "allowDuplicateAwards": False,
            },
            "cred-secret-0",
        ),
        (
            UPSERT,
            "PUT",
            f"{CRED}/v2/issuers/ISS/recipient-groups/GRP/members/9",
            {"email": "ada@x.edu", "name": "Ada", "earned": ["BC 1"]},
            "cred-secret-0",
        ),
        (
            REMOVE,
            "DELETE",
            f"{CRED}/v2/issuers/ISS/recipient-groups/GRP/members/9",
            None,
            "cred-secret-0",
        ),
        (
            PUBLISH,
            "PUT",
            f"{CRED}/v2/issuers/ISS/recipient-groups/GRP/leaderboard",
            {"entries": [{"canvasUserId": 9, "badges": 1}]},
            "cred-secret-0",
        ),
    ],
)
def test_request_shape_per_command(
    command: Command, method: str, url: str, body: object, token: str
) -> None:
    services = ScriptedServices(lambda r: httpx.Response(200, json={"result": [{}]}))
    execute(adapter_for(services), command)
    (request,) = services.requests
    assert (request.method, str(request.url)) == (method, url)
    assert request.headers["Authorization"] == f"Bearer {token}"
    assert (json.loads(request.content) if request.content else None) == body


def test_pages_map_to_records_and_the_next_link_is_passed_through_verbatim() -> None:
    next_url = f"{CANVAS}/api/v1/courses/7/enrollments?page=bookmark:WzEwXQ&per_page=100"
    link = f'<{CANVAS}/x?page=1>; rel="current",<{next_url}>; rel="next"'
    services = ScriptedServices(
        lambda r: httpx.Response(200, json=[{"id": 1}], headers={"Link": link})
    )
    adapter = adapter_for(services)
    (page,) = execute(adapter, READ)
    assert page == PageReceived(1, ({"id": 1},), next_url)
    execute(adapter, FetchCanvasPage(8, 7, CanvasList.ENROLLMENTS, READ.params, next_url))
    assert str(services.requests[-1].url) == next_url


def test_credentials_envelope_is_unwrapped() -> None:
    body = {"status": {"success": True}, "result": [{"entityId": "A1"}]}
    services = ScriptedServices(
        lambda r: httpx.Response(
            200, content=json.dumps(body), headers={"Content-Type": "application/ld+json"}
        )
    )
    page, ack = execute(adapter_for(services), CRED_READ, ISSUE)
    assert page == PageReceived(2, ({"entityId": "A1"},), None)
    assert ack == WriteAcknowledged(3, {"entityId": "A1"})


def test_a_page_link_to_another_host_is_refused_without_sending_the_token() -> None:
    services = ScriptedServices()
    elsewhere = FetchCanvasPage(8, 7, CanvasList.USERS, (), "https://evil.test/steal?page=2")
    (failed,) = execute(adapter_for(services), elsewhere)
    assert isinstance(failed, RequestFailed) and failed.failure is Failure.REJECTED
    assert services.requests == []


def test_base_urls_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="absolute"):
        HttpAdapter("canvas.example.edu", canvas_token(), CRED, cred_token())


# -- failures ------------------------------------------------------------------------------


def test_retry_after_becomes_throttled_with_its_delay() -> None:
    services = ScriptedServices(
        lambda r: httpx.Response(429, text="429 Too Many Requests", headers={"Retry-After": "17"})
    )
    (failed,) = execute(adapter_for(services), READ)
    assert isinstance(failed, RequestFailed)
    assert (failed.failure, failed.retry_after) == (Failure.THROTTLED, 17.0)


def test_canvas_403_rate_limit_text_is_throttling_not_auth() -> None:
    services = ScriptedServices(
        lambda r: httpx.Response(
            403, text="403 Forbidden (Rate Limit Exceeded)\n", headers={"Retry-After": "3"}
        )
    )
    (failed,) = execute(adapter_for(services), READ)
    assert isinstance(failed, RequestFailed)
    assert (failed.failure, failed.retry_after) == (Failure.THROTTLED, 3.0)


@pytest.mark.parametrize("command", WRITES)
def test_5xx_on_a_write_is_ambiguous_and_on_a_read_transient(command: Command) -> None:
    services = ScriptedServices(lambda r: httpx.Response(503, text="503 Service Unavailable"))
    write, read = execute(adapter_for(services), command, READ)
    assert isinstance(write, RequestFailed) and write.failure is Failure.AMBIGUOUS
    assert isinstance(read, RequestFailed) and read.failure is Failure.TRANSIENT


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectTimeout("slow"), "timeout"),
        (httpx.PoolTimeout("slow"), "timeout"),
        (httpx.ConnectError("refused"), "reset"),
        (httpx.ReadError("reset by peer"), "reset"),
        (httpx.RemoteProtocolError("closed mid-body"), "reset"),
    ],
)
def test_transport_errors_map_to_timeout_or_reset(error: httpx.TransportError, kind: str) -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise error

    read, write = execute(adapter_for(ScriptedServices(drop)), READ, ISSUE)
    assert read == RequestFailed(1, Failure.TRANSIENT, detail=f"transport {kind}")
    assert write == RequestFailed(3, Failure.AMBIGUOUS, detail=f"transport {kind}")


def test_a_configured_timeout_is_applied_to_every_request() -> None:
    seen: list[object] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json=[])

    client = httpx.AsyncClient(transport=httpx.MockTransport(record))
    adapter = HttpAdapter(
        CANVAS, canvas_token(), CRED, cred_token(), clock=Clock(), timeout=2.5, client=client
    )
    execute(adapter, READ)
    assert seen == [{"connect": 2.5, "read": 2.5, "write": 2.5, "pool": 2.5}]


# -- tokens --------------------------------------------------------------------------------


def test_401_is_reported_as_auth_then_the_token_is_refreshed_and_used() -> None:
    answers = iter([httpx.Response(401, json={"errors": [{"message": "Invalid access token."}]})])
    services = ScriptedServices(lambda r: next(answers, httpx.Response(200, json=[])))
    failed, page = execute(adapter_for(services), READ, READ)
    assert isinstance(failed, RequestFailed) and failed.failure is Failure.AUTH
    assert isinstance(page, PageReceived)
    assert services.grants == [
        {
            "grant_type": "refresh_token",
            "client_id": "10000000000001",
            "client_secret": "client-secret-xyz",
            "refresh_token": "canvas-refresh-abc",
        }
    ]
    token_request = services.requests[1]
    assert (token_request.method, str(token_request.url)) == (
        "POST",
        f"{CANVAS}/login/oauth2/token",
    )
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert [r.headers["Authorization"] for r in services.api_requests] == [
        "Bearer canvas-secret-0",
        "Bearer fresh-1",
    ]


def test_tokens_are_refreshed_proactively_within_the_margin_of_expiry() -> None:
    clock = Clock()
    services = ScriptedServices()
    adapter = adapter_for(services, clock)
    clock.now = T0 + 3600 - REFRESH_MARGIN - 1
    execute(adapter, READ)
    assert services.grants == []
    clock.now += 1
    execute(adapter, READ)
    assert [g["grant_type"] for g in services.grants] == ["refresh_token"]
    assert services.api_requests[-1].headers["Authorization"] == "Bearer fresh-1"
    assert adapter.canvas_token.expires_at == clock.now + 3600  # from expires_in
    execute(adapter, READ)
    assert len(services.grants) == 1  # the new token is good for another hour


def test_badgr_refresh_tokens_rotate_and_a_password_grant_is_the_fallback() -> None:
    clock = Clock()
    services = ScriptedServices(refused=frozenset({"rotated-1"}))
    token = OAuthToken.credentials(
        CRED,
        None,
        refresh_token="cred-refresh-abc",
        username="admin@x.edu",
        password="hunter2",
    )
    adapter = adapter_for(services, clock, cred=token)
    execute(adapter, CRED_READ)  # no access token yet: one is obtained first
    clock.now += 86400
    execute(adapter, CRED_READ)  # expired: the rotated refresh token is refused, log in
    assert [(g["grant_type"], g.get("refresh_token")) for g in services.grants] == [
        ("refresh_token", "cred-refresh-abc"),
        ("refresh_token", "rotated-1"),
        ("password", None),
    ]
    assert services.grants[-1] == {
        "grant_type": "password",
        "client_id": "public",  # self-hosted Badgr wants the client and scope named
        "scope": "rw:profile rw:issuer rw:backpack",
        "username": "admin@x.edu",
        "password": "hunter2",
    }
    assert services.api_requests[-1].headers["Authorization"] == "Bearer fresh-3"
    assert token.last_error is None


def test_a_failed_refresh_keeps_the_old_token_and_the_401_reaches_the_engine() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/login/oauth2/token":
            raise httpx.ConnectError("down")
        return httpx.Response(401, json={})

    clock = Clock(T0 + 3600)  # already expired
    client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    token = canvas_token()
    adapter = HttpAdapter(CANVAS, token, CRED, cred_token(), clock=clock, client=client)
    (failed,) = execute(adapter, READ)
    assert isinstance(failed, RequestFailed) and failed.failure is Failure.AUTH
    assert token.last_error == "token refresh failed: ConnectError"
    assert token.access_token == "canvas-secret-0"


def test_a_static_token_is_never_refreshed() -> None:
    services = ScriptedServices(lambda r: httpx.Response(401, json={}))
    static = OAuthToken.static("personal-token-1")
    adapter = adapter_for(services, Clock(T0 + 10**6), canvas=static)
    failed, _ = execute(adapter, READ, READ)
    assert isinstance(failed, RequestFailed) and failed.failure is Failure.AUTH
    assert services.grants == []
    assert [r.headers["Authorization"] for r in services.requests] == [
        "Bearer personal-token-1"
    ] * 2


def answering(response: httpx.Response) -> Handler:
    return lambda request: response


def timing_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


def test_tokens_never_appear_in_events_or_reprs() -> None:
    secrets = ["canvas-secret-0", "cred-secret-0", "client-secret-xyz", "canvas-refresh-abc"]
    secrets += ["cred-refresh-abc", "fresh-"]
    handlers = [
        answering(httpx.Response(401, json={"errors": [{"message": "Invalid access token."}]})),
        answering(httpx.Response(429, text="slow down", headers={"Retry-After": "1"})),
        answering(httpx.Response(503, text="503 Service Unavailable")),
        answering(httpx.Response(404, json={})),
        answering(httpx.Response(422, json={"errors": {}})),
        answering(httpx.Response(200, json={"result": [{"entityId": "X"}]})),
        timing_out,
    ]
    events: list[Event] = []
    tokens: list[OAuthToken] = []
    for handler in handlers:
        adapter = adapter_for(ScriptedServices(handler), Clock(T0 + 86400))  # both tokens renewed
        events += execute(adapter, READ, CRED_READ, *WRITES)
        tokens += [adapter.canvas_token, adapter.credentials_token]
    text = repr(events) + repr(tokens) + repr([t.last_error for t in tokens])
    assert [s for s in secrets if s in text] == []


def test_responses_are_decoded_as_the_wire_module_expects() -> None:
    link_a = f'<{CANVAS}/a>; rel="current"'
    link_b = f'<{CANVAS}/b>; rel="next"'
    json_type = {"Content-Type": "application/json"}
    cases = [
        httpx.Response(200, content=b"{not json", headers=json_type),
        httpx.Response(200, content=b"null", headers=json_type),
        httpx.Response(200, headers=[("Link", link_a), ("Link", link_b)], json=[]),
    ]
    bad, null, two_links = (wire_response(r) for r in cases)
    assert bad.body == "{not json"  # handed on as text, for the engine to quarantine
    assert null.body is None
    assert two_links.header("link") == f"{link_a}, {link_b}"


# -- links -----------------------------------------------------------------------------------

GOOD_RULES = [
    {"type": "assignment_score", "badge_class": "BC1", "assignment_id": 5, "min_percent": 80},
    {"type": "course_grade", "badge_class": "BC2", "min_percent": 70.0},
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_links_reads_json_and_toml_alike(tmp_path: Path) -> None:
    link = {"course_id": 101, "issuer_id": "ISS", "group_id": "GRP", "rules": GOOD_RULES}
    from_json = load_links(write(tmp_path, "links.json", json.dumps({"links": [link]})))
    toml = """
[[links]]
course_id = 101
issuer_id = "ISS"
group_id = "GRP"
rules = [
  { type = "assignment_score", badge_class = "BC1", assignment_id = 5, min_percent = 80 },
  { type = "course_grade", badge_class = "BC2", min_percent = 70.0 },
]
"""
    from_toml = load_links(write(tmp_path, "links.toml", toml))
    rules = (AssignmentScore("BC1", 5, min_percent=80.0), CourseGrade("BC2", 70.0))
    assert from_json == from_toml == [CourseLinked(101, "ISS", "GRP", rules)]
    again = load_links(write(tmp_path, "again.json", links_to_json(from_json)))
    assert again == from_json


def _link(**changes: object) -> str:
    link: dict[str, object] = {
        "course_id": 101,
        "issuer_id": "ISS",
        "group_id": "GRP",
        "rules": GOOD_RULES,
    }
    link.update(changes)
    return json.dumps([link])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"courses": []}', "expected a list of links"),
        ("[7]", "link 0: expected an object"),
        (_link(course_id="101"), "course_id must be a positive integer, got '101'"),
        (_link(course_id=True), "course_id must be a positive integer"),
        (_link(course_id=0), "course_id must be a positive integer"),
        (_link(group_id=""), "group_id must be a non-empty string"),
        (_link(issuer_id=None), "issuer_id must be a non-empty string"),
        (_link(rules=[]), "rules must be a non-empty list"),
        (_link(extra=1), "unknown keys ['extra']"),
        (_link(rules=[{"type": "vibes", "badge_class": "X"}]), "rule 0: unknown type 'vibes'"),
        (
            _link(rules=[{"type": "course_grade", "badge_class": "X", "min_percent": "70"}]),
            "rule 0: min_percent must be float, got '70'",
        ),
        (
            _link(rules=[{"type": "course_grade", "badge_class": "X", "min_percent": None}]),
            "rule 0: min_percent must be float, got None",
        ),
        (_link(rules=[{"type": "course_grade", "badge_class": "X"}]), "missing keys"),
        (
            _link(rules=[{"type": "course_grade", "badge_class": "X", "min_percent": 1, "z": 2}]),
            "unknown keys ['z']",
        ),
        (
            _link(rules=[{"type": "assignment_score", "badge_class": "X", "assignment_id": 5}]),
            "rule 0: AssignmentScore needs exactly one of min_points or min_percent",
        ),
        (
            _link(
                rules=[{"type": "quiz_score", "badge_class": "X", "quiz_id": 5.5, "min_percent": 1}]
            ),
            "quiz_id must be int",
        ),
        (json.dumps([json.loads(_link())[0]] * 2), "link 1: course 101 is linked twice"),
    ],
)
def test_load_links_errors_name_the_file_link_and_rule(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, "links.json", text)
    with pytest.raises(LinksError) as raised:
        load_links(path)
    assert str(path) in str(raised.value) and message in str(raised.value)


def test_load_links_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(LinksError, match="cannot read the links file"):
        load_links(tmp_path / "absent.json")
    with pytest.raises(LinksError, match="not valid TOML"):
        load_links(write(tmp_path, "links.toml", "[[links]\n"))


# -- the sync loop ---------------------------------------------------------------------------


class AsyncMemory:
    """The in-memory transport behind the async adapter interface, so the loop can be
    tested against the simulated world on its virtual clock."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport

    async def execute(self, command: Command) -> Event:
        return self.transport.execute(command)


def _linked_world(seed: int, rates: FaultRates) -> tuple[World, list[CourseLinked], AsyncMemory]:
    world, rules = World.small(seed)
    links = [world.link_course(c, r) for c, r in sorted(rules.items())]
    source = SeededChoices(seed)
    return world, links, AsyncMemory(MemoryTransport(world, FaultPlan(rates, source)))


def test_run_once_syncs_every_course_and_saves_state_after_every_step(tmp_path: Path) -> None:
    world, links, adapter = _linked_world(1, FaultRates.none())
    state = tmp_path / "state.db"
    store = SqliteStore(state)
    engine = load_engine(store)
    apply_links(engine, links)
    seen: list[RoundEnded] = []
    saves: list[str | None] = []
    original = adapter.execute
    reader = SqliteStore(state)  # another connection sees only committed steps

    async def checking(command: Command) -> Event:
        saves.append(reader.load())  # saved before each command is performed
        assert saves[-1] == engine.to_json()
        return await original(command)

    adapter.execute = checking  # type: ignore[method-assign]
    ended = run(
        run_sync(
            adapter,
            engine,
            once=True,
            clock=lambda: world.clock.now,
            store=store,
            on_round=seen.append,
        )
    )
    assert [e.course_id for e in ended] == sorted(link.course_id for link in links)
    # Requests take virtual time (simulators.services.Latency): rounds end as they finish.
    assert all(e.ok and e.error is None and T0 <= e.at <= world.clock.now for e in ended)
    assert sorted(seen, key=lambda e: e.course_id) == ended  # in the order they ended
    assert len(set(saves)) > 10
    reader.close()
    store.close()
    assert list(tmp_path.iterdir()) == [state]  # no temp, -wal or -shm file left behind
    with SqliteStore(state) as again:
        restored = load_engine(again)
    assert restored.to_json() == engine.to_json()
    lines = summary(restored)
    assert len(lines) == 3 and all(": ok, last sync 2025-09-01T00:00:00Z" in x for x in lines)


def test_run_once_reports_a_course_that_failed_and_is_backing_off() -> None:
    world, links, adapter = _linked_world(2, FaultRates(transient_5xx=1000))
    engine = SyncEngine()
    apply_links(engine, links)
    ended = run(run_sync(adapter, engine, once=True, clock=lambda: world.clock.now))
    assert ended and all(not e.ok for e in ended)
    assert all(e.error is not None and "503" in e.error and e.next_due > e.at for e in ended)
    assert all("FAILING (1x:" in line for line in summary(engine))


class Stop(Exception):
    pass


def test_the_loop_sleeps_until_the_next_course_is_due() -> None:
    world, links, adapter = _linked_world(3, FaultRates.none())
    engine = SyncEngine()
    apply_links(engine, links)
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            raise Stop
        world.clock.advance(seconds)

    with pytest.raises(Stop):
        run(run_sync(adapter, engine, once=False, clock=lambda: world.clock.now, sleep=fake_sleep))
    # Each wait is the poll less the time the round's requests took (virtual latency), and
    # each round starts on the poll: the loop sleeps until the next course is due, no longer.
    poll = engine.policy.poll_interval
    assert len(waits) == 3 and all(poll - 10 < w < poll for w in waits)
    assert all(s.last_success_at == T0 + 2 * 300 for s in engine.status())


def test_apply_links_refuses_an_engine_that_is_already_ticking() -> None:
    world, links, _ = _linked_world(1, FaultRates.none())
    engine = SyncEngine()
    apply_links(engine, links[:1])
    engine.handle(Tick(world.clock.now))
    with pytest.raises(RuntimeError, match="before the engine's first Tick"):
        apply_links(engine, links[1:])
