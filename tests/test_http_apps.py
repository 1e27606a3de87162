"""The FastAPI apps, in process through ``httpx.ASGITransport``: Link headers, envelopes,
401 shapes, OAuth grants, the OpenAPI document, the HTTP effect of each fault, and the
determinism the fault plan promises: the same seed draws the same faults whether requests
go through ``Services.serve`` directly or over HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from simulators import (
    ApiRequest,
    Dropped,
    FaultKind,
    FaultPlan,
    FaultRates,
    SeededChoices,
    Service,
    Services,
    World,
)
from simulators.http.apps import (
    CANVAS_ENDPOINTS,
    CANVAS_TOKEN_PATH,
    CREDENTIALS_ENDPOINTS,
    CREDENTIALS_TOKEN_PATH,
    canvas_app,
    credentials_app,
)
from sync_core.wire import HttpResponse, parse_link_header

CANVAS = "http://canvas.test"
CRED = "http://credentials.test"
COURSE_A, COURSE_B, COURSE_C = 101, 102, 103
NOT_FOUND = {"errors": [{"message": "The specified resource does not exist."}]}


class AsgiClient:
    """A synchronous face on an ``httpx.AsyncClient`` over one ASGI app; one event loop
    per client, so its connections outlive a single request."""

    def __init__(self, app: FastAPI, base_url: str) -> None:
        self._loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(app=app)
        self._client = httpx.AsyncClient(transport=transport, base_url=base_url)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._client.request(method, url, **kwargs))

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()


@dataclass
class Env:
    world: World
    plan: FaultPlan
    services: Services
    canvas: AsgiClient
    cred: AsgiClient
    canvas_token: str
    cred_token: str
    issuer: str
    group: str
    badge: str

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """A Canvas GET with the service token."""
        headers = {"Authorization": f"Bearer {self.canvas_token}"}
        return self.canvas.request("GET", path, headers=headers, **kwargs)

    def badgr(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A Credentials request with the service token."""
        headers = {"Authorization": f"Bearer {self.cred_token}"}
        return self.cred.request(method, path, headers=headers, **kwargs)


EnvFactory = Callable[..., Env]


@pytest.fixture
def make_env() -> Iterator[EnvFactory]:
    clients: list[AsgiClient] = []

    def make(
        seed: int = 1,
        rates: FaultRates | None = None,
        canvas_throttle_status: int = 429,
        services_class: type[Services] = Services,
    ) -> Env:
        world, rules = World.small(seed)
        for course_id, course_rules in sorted(rules.items()):
            world.link_course(course_id, course_rules)
        plan = FaultPlan(rates or FaultRates.none(), SeededChoices(seed))
        services = services_class(world, plan, canvas_throttle_status)
        canvas = AsgiClient(canvas_app(services), CANVAS)
        cred = AsgiClient(credentials_app(services), CRED)
        clients.extend((canvas, cred))
        link = world.links[COURSE_A]
        return Env(
            world,
            plan,
            services,
            canvas,
            cred,
            world.tokens.issue(Service.CANVAS),
            world.tokens.issue(Service.CREDENTIALS),
            link.issuer_id,
            link.group_id,
            link.rules[0].badge_class,
        )

    yield make
    for client in clients:
        client.close()


def links(response: httpx.Response) -> dict[str, str]:
    return parse_link_header(response.headers.get("link", ""))


def is_envelope_error(body: Any) -> bool:
    return (
        set(body) == {"status", "validationErrors", "fieldErrors", "result"}
        and body["status"]["success"] is False
        and isinstance(body["validationErrors"], list)
        and body["result"] == []
    )


# --------------------------------------------------------------------------- paging


def test_canvas_numbered_links_are_absolute_and_keep_every_filter(make_env: EnvFactory) -> None:
    env = make_env()
    canvas = env.world.canvas
    expected = sorted(
        {
            e.user_id
            for e in canvas.enrollments_in(COURSE_A)
            if e.type == "StudentEnrollment" and e.state in ("active", "invited")
        },
        key=lambda u: (canvas.users[u].sortable_name, u),
    )
    response = env.get(
        f"/api/v1/courses/{COURSE_A}/users",
        params=[("enrollment_type[]", "student"), ("per_page", "2")],
    )
    seen: list[int] = []
    while True:
        assert response.status_code == 200
        header = response.headers["link"]
        assert '>; rel="current",<' in header  # Canvas joins entries with "," alone
        rels = links(response)
        assert "last" not in rels  # /courses/:id/users computes no total
        assert all(url.startswith(f"{CANVAS}/api/v1/courses/") for url in rels.values())
        assert all("enrollment_type%5B%5D=student" in url for url in rels.values())
        seen += [user["id"] for user in response.json()]
        if "next" not in rels:
            break
        response = env.get(rels["next"])
    assert seen == expected


def test_canvas_bookmark_links_cover_every_enrollment_once(make_env: EnvFactory) -> None:
    env = make_env()
    expected = {
        e.id
        for e in env.world.canvas.enrollments_in(COURSE_A)
        if e.state not in ("completed", "deleted", "rejected")
    }
    response = env.get(f"/api/v1/courses/{COURSE_A}/enrollments", params={"per_page": "3"})
    assert "page=first" in links(response)["current"]
    seen: list[int] = []
    while True:
        seen += [row["id"] for row in response.json()]
        nxt = links(response).get("next")
        if nxt is None:
            break
        assert "page=bookmark:" in nxt
        response = env.get(nxt)
    assert sorted(seen) == sorted(expected) and len(seen) == len(expected)


def test_credentials_cursor_links_and_success_envelope(make_env: EnvFactory) -> None:
    env = make_env()
    path = f"/v2/badgeclasses/{env.badge}/assertions"
    made = []
    for i in range(3):
        award = env.badgr("POST", path, json={"recipient": {"identity": f"S{i}@X.edu"}})
        assert award.status_code == 201
        assert award.headers["content-type"] == "application/ld+json"
        assert award.json()["status"] == {"success": True, "description": "ok"}
        made.append(award.json()["result"][0]["entityId"])
    first = env.badgr("GET", path, params={"num": "2"})
    assert set(first.json()) == {"status", "result"}  # error keys only on errors
    assert first.headers["link"].endswith('>; rel="next"')
    second = env.badgr("GET", links(first)["next"])
    assert '>; rel="prev"' in second.headers["link"] and "next" not in links(second)
    newest_first = [a["entityId"] for a in first.json()["result"] + second.json()["result"]]
    assert newest_first == made[::-1]


# --------------------------------------------------------------------------- error shapes


def test_errors_use_each_service_shape_never_fastapis(make_env: EnvFactory) -> None:
    env = make_env()
    for path in ("/nope", "/api/v1/courses/abc", f"/api/v1/courses/{COURSE_A}/nope", "/api/v1/"):
        answer = env.get(path)
        assert (answer.status_code, answer.json()) == (404, NOT_FOUND)
    posted = env.canvas.request("POST", "/api/v1/courses")  # a method Canvas has no route for
    assert (posted.status_code, posted.json()) == (404, NOT_FOUND)
    unknown = env.badgr("GET", "/v2/badgeclasses/missing")
    assert unknown.status_code == 404 and is_envelope_error(unknown.json())
    assert unknown.json()["status"]["description"] == "entity not found or insufficient privileges"
    patched = env.badgr("PATCH", f"/v2/badgeclasses/{env.badge}/assertions")
    assert patched.status_code == 405 and is_envelope_error(patched.json())
    assert patched.json()["fieldErrors"] == 'Method "PATCH" not allowed.'
    invalid = env.badgr("POST", f"/v2/badgeclasses/{env.badge}/assertions", content=b"{oops")
    assert invalid.status_code == 400 and is_envelope_error(invalid.json())


def test_api_requests_are_labelled_by_the_route_starlette_would_pick(make_env: EnvFactory) -> None:
    """API requests skip FastAPI's router (``_Direct``) yet are logged under the route it
    would have picked; token grants and the OpenAPI document still go through FastAPI."""
    env = make_env()
    env.get(f"/api/v1/courses/{COURSE_A}/enrollments?per_page=2")
    env.get("/api/v1/nowhere")
    env.canvas.request("POST", "/api/v1/courses")  # an API route, the wrong method
    env.canvas.request("GET", "/login/oauth2/token")  # the token route, the wrong method
    labels = [label for _, label, _, _ in env.services.log]
    assert labels == [
        "GET /api/v1/courses/{course_id}/enrollments",
        "GET (no route)",
        "POST /api/v1/courses",
        "GET /login/oauth2/token",
    ]
    assert env.canvas.request("GET", "/openapi.json").json()["info"]["title"]
    granted = env.canvas.request("POST", "/login/oauth2/token", data={"grant_type": "password"})
    assert granted.status_code == 400 and len(env.services.log) == len(labels)


def raw_get(app: FastAPI, path: bytes, query: bytes) -> tuple[int, Any]:
    """Drive the ASGI app with a request target httpx would have percent-encoded."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path.decode("latin-1"),
        "raw_path": path,
        "query_string": query,
        "headers": [(b"host", b"canvas.test")],
        "server": ("canvas.test", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def test_a_request_target_that_is_not_utf8_is_a_400_in_shape(make_env: EnvFactory) -> None:
    """A raw client may send bytes above 0x7f in the query; Starlette cannot decode the
    URL then, and the answer must still be the service's 400, not a 500."""
    env = make_env()
    for app, shape in (
        (canvas_app(env.services), "errors"),
        (credentials_app(env.services), "status"),
    ):
        status, body = raw_get(app, b"/api/v1/courses", b"per_page=\xff")
        assert status == 400 and shape in body


def test_401_shapes(make_env: EnvFactory) -> None:
    env = make_env()
    bare = env.canvas.request("GET", "/api/v1/courses")
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == 'Bearer realm="canvas-lms"'
    assert bare.json() == {
        "status": "unauthenticated",
        "errors": [{"message": "user authorization required"}],
    }
    wrong = env.canvas.request("GET", "/api/v1/courses", headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Bearer realm="canvas-lms"'
    assert wrong.json() == {"errors": [{"message": "Invalid access token."}]}
    badgr = env.cred.request("GET", "/v2/issuers", headers={"Authorization": "Bearer x"})
    assert badgr.status_code == 401 and "www-authenticate" not in badgr.headers
    assert badgr.json() == {
        "status": {"success": False, "description": "no valid auth token found"},
        "validationErrors": [],
        "fieldErrors": {},
        "result": [],
    }


# --------------------------------------------------------------------------- endpoints


def test_canvas_user_tokens_progress_and_people(make_env: EnvFactory) -> None:
    env = make_env()
    canvas = env.world.canvas
    student_b = next(
        e.user_id for e in canvas.enrollments_in(COURSE_B) if e.type == "StudentEnrollment"
    )
    mine = {"Authorization": f"Bearer {env.world.tokens.issue(Service.CANVAS, student_b)}"}
    own = env.canvas.request("GET", "/api/v1/courses", headers=mine)
    assert [c["id"] for c in own.json()] == [COURSE_B]
    other = env.canvas.request("GET", f"/api/v1/courses/{COURSE_A}", headers=mine)
    assert other.status_code == 403 and other.json()["status"] == "unauthorized"
    me = env.canvas.request("GET", "/api/v1/users/self", headers=mine)
    assert me.json()["id"] == student_b
    progress = env.canvas.request(
        "GET", f"/api/v1/courses/{COURSE_B}/users/self/progress", headers=mine
    )
    module = canvas.modules_in(COURSE_B)[0]
    done = sum((i, student_b) in canvas.completions for i in module.items)
    assert progress.json()["requirement_count"] == len(module.items)
    assert progress.json()["requirement_completed_count"] == done
    assert env.get("/api/v1/users/self").status_code == 404  # a service token has no user
    student_c = next(
        e.user_id for e in canvas.enrollments_in(COURSE_C) if e.type == "StudentEnrollment"
    )
    not_modular = env.get(f"/api/v1/courses/{COURSE_C}/users/{student_c}/progress")
    assert not_modular.status_code == 400
    assert not_modular.json()["error"]["message"].startswith("no progress available")
    in_course = env.get(f"/api/v1/courses/{COURSE_B}/users/{student_b}")
    assert in_course.json()["email"] == canvas.users[student_b].email
    assert env.get(f"/api/v1/courses/{COURSE_C}/users/{student_b}").status_code == 404


def test_credentials_issuers_badges_and_batches(make_env: EnvFactory) -> None:
    env = make_env()
    creds = env.world.credentials
    issuers = env.badgr("GET", "/v2/issuers").json()["result"]
    assert [i["entityId"] for i in issuers] == list(creds.issuers)
    badges = env.badgr("GET", f"/v2/issuers/{env.issuer}/badgeclasses").json()["result"]
    assert {b["entityId"] for b in badges} == set(creds.badge_classes)
    issue = f"/v2/badgeclasses/{env.badge}/issue"
    half_bad = {"assertions": [{"recipient": {"identity": "a@x.edu"}}, {"recipient": {}}]}
    refused = env.badgr("POST", issue, json=half_bad)
    assert refused.status_code == 400 and is_envelope_error(refused.json())
    assert refused.json()["fieldErrors"] == [{}, {"recipient": ["This field is required."]}]
    assert creds.assertions_for(env.badge) == []  # all or nothing
    both = {
        "assertions": [
            {"recipient": {"identity": "A@x.edu"}},
            {"recipient": {"identity": "b@x.edu"}},
        ]
    }
    issued = env.badgr("POST", issue, json=both)
    assert issued.status_code == 201
    ids = [a["entityId"] for a in issued.json()["result"]]
    revoke = [
        {"entityId": ids[0], "revocationReason": "typo"},
        {"entityId": "nope", "revocationReason": "x"},
    ]
    revoked = env.badgr("POST", "/v2/assertions/revoke", json=revoke)
    assert revoked.status_code == 200
    assert revoked.json()["status"] == {"success": True, "description": "revoked badges"}
    assert [r["revoked"] for r in revoked.json()["result"]] == [True, False]
    assert revoked.json()["result"][1]["reason"] == "permission denied or object not found"
    shown = env.badgr("GET", f"/v2/assertions/{ids[0]}").json()["result"][0]
    assert shown["revoked"] is True and shown["revocationReason"] == "typo"


# --------------------------------------------------------------------------- OAuth


def form(**fields: str) -> dict[str, Any]:
    return {"data": fields}


def test_canvas_refresh_grant(make_env: EnvFactory) -> None:
    env = make_env()
    tokens = env.world.tokens
    tokens.add_client(Service.CANVAS, "key-1", "secret-1")
    teacher = min(env.world.canvas.users)
    access, refresh = tokens.issue_pair(Service.CANVAS, teacher)
    grant = form(
        grant_type="refresh_token",
        client_id="key-1",
        client_secret="secret-1",
        refresh_token=refresh,
    )
    answer = env.canvas.request("POST", CANVAS_TOKEN_PATH, **grant)
    body = answer.json()
    assert answer.status_code == 200 and set(body) == {
        "access_token",
        "token_type",
        "user",
        "expires_in",
    }
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["user"] == {"id": teacher, "name": env.world.canvas.users[teacher].name}
    old = env.canvas.request(
        "GET", "/api/v1/courses", headers={"Authorization": f"Bearer {access}"}
    )
    assert old.status_code == 401 and "www-authenticate" in old.headers
    new = {"Authorization": f"Bearer {body['access_token']}"}
    assert env.canvas.request("GET", "/api/v1/courses", headers=new).status_code == 200
    again = env.canvas.request("POST", CANVAS_TOKEN_PATH, **grant)  # refresh tokens are reused
    assert again.status_code == 200
    stale = {**grant["data"], "refresh_token": "nope"}
    missing = env.canvas.request("POST", CANVAS_TOKEN_PATH, data=stale)
    assert missing.status_code == 400
    assert missing.json() == {
        "error": "invalid_request",
        "error_description": "refresh_token not found",
    }
    wrong_secret = {**grant["data"], "client_secret": "guess"}
    refused = env.canvas.request("POST", CANVAS_TOKEN_PATH, data=wrong_secret)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


def test_credentials_grants(make_env: EnvFactory) -> None:
    env = make_env()
    tokens = env.world.tokens
    tokens.add_login("ada@x.edu", "pw")
    password = env.cred.request(
        "POST", CREDENTIALS_TOKEN_PATH, **form(username="ada@x.edu", password="pw")
    )
    body = password.json()
    assert password.status_code == 200
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 86400)
    assert body["scope"] == "rw:profile rw:issuer rw:backpack"
    refresh = form(grant_type="refresh_token", refresh_token=body["refresh_token"])
    rotated = env.cred.request("POST", CREDENTIALS_TOKEN_PATH, **refresh).json()
    assert rotated["refresh_token"] != body["refresh_token"]
    assert rotated["access_token"] != body["access_token"]
    reused = env.cred.request("POST", CREDENTIALS_TOKEN_PATH, **refresh)
    assert (reused.status_code, reused.json()) == (401, {"error": "invalid_grant"})
    old = env.cred.request(
        "GET", "/v2/issuers", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert old.status_code == 401
    fresh = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert env.cred.request("GET", "/v2/issuers", headers=fresh).status_code == 200
    wrong = env.cred.request(
        "POST", CREDENTIALS_TOKEN_PATH, **form(username="ada@x.edu", password="no")
    )
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid_grant"})
    in_query = env.cred.request(
        "POST", CREDENTIALS_TOKEN_PATH, params={"username": "ada@x.edu", "password": "pw"}
    )
    assert in_query.status_code == 400
    assert (
        in_query.json()["error"]
        == "Token grant parameters must be sent in post body, not query parameters"
    )
    tokens.add_client(Service.CREDENTIALS, "app", "s3cret")
    basic = {"Authorization": "Basic " + base64.b64encode(b"app:s3cret").decode()}
    client = env.cred.request(
        "POST", CREDENTIALS_TOKEN_PATH, headers=basic, **form(grant_type="client_credentials")
    )
    assert client.status_code == 200 and "refresh_token" not in client.json()
    stranger = env.cred.request(
        "POST", CREDENTIALS_TOKEN_PATH, **form(client_id="who", client_secret="x")
    )
    assert (stranger.status_code, stranger.json()) == (400, {"error": "invalid client_id"})


def test_token_grants_are_never_faulted(make_env: EnvFactory) -> None:
    env = make_env(rates=FaultRates().with_rate(FaultKind.TRANSIENT_5XX, 1000))
    env.world.tokens.add_login("ada@x.edu", "pw")
    assert env.get("/api/v1/courses").status_code == 503
    grant = env.cred.request(
        "POST", CREDENTIALS_TOKEN_PATH, **form(username="ada@x.edu", password="pw")
    )
    assert grant.status_code == 200
    canvas = env.canvas.request("POST", CANVAS_TOKEN_PATH, **form(grant_type="refresh_token"))
    assert canvas.status_code == 401  # answered by the grant itself, not by a 503
    assert [entry[1] for entry in env.services.log] == ["GET /api/v1/courses"]


# --------------------------------------------------------------------------- OpenAPI


@pytest.mark.parametrize(
    ("factory", "endpoints", "token_path"),
    [
        (canvas_app, CANVAS_ENDPOINTS, CANVAS_TOKEN_PATH),
        (credentials_app, CREDENTIALS_ENDPOINTS, CREDENTIALS_TOKEN_PATH),
    ],
)
def test_openapi_documents_every_route(
    make_env: EnvFactory, factory: Callable[[Services], FastAPI], endpoints: Any, token_path: str
) -> None:
    env = make_env()
    app = factory(env.services)
    document = AsgiClient(app, "http://docs.test")
    try:
        paths = document.request("GET", "/openapi.json").json()["paths"]
    finally:
        document.close()
    documented = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    routes = {
        (method, r.path) for r in app.routes if isinstance(r, APIRoute) for method in r.methods
    }
    declared = {(e.method, e.path) for e in endpoints} | {("POST", token_path)}
    assert documented == routes == declared
    for path, ops in paths.items():
        for operation in ops.values():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert names == {part[1:-1] for part in path.split("/") if part.startswith("{")}
            assert all(p["schema"] == {"type": "string"} for p in operation.get("parameters", []))
            assert "422" not in operation["responses"]


# --------------------------------------------------------------------------- faults


def only(kind: FaultKind) -> FaultRates:
    return FaultRates().with_rate(kind, 1000)


def test_transient_5xx_is_a_503(make_env: EnvFactory) -> None:
    env = make_env(rates=only(FaultKind.TRANSIENT_5XX))
    for answer in (env.get("/api/v1/courses"), env.badgr("GET", "/v2/issuers")):
        assert (answer.status_code, answer.text) == (503, "503 Service Unavailable")


@pytest.mark.parametrize("canvas_status", [429, 403])
def test_throttles_carry_retry_after(make_env: EnvFactory, canvas_status: int) -> None:
    env = make_env(rates=only(FaultKind.THROTTLE), canvas_throttle_status=canvas_status)
    canvas = env.get("/api/v1/courses")
    assert canvas.status_code == canvas_status
    assert canvas.headers["content-type"].startswith("text/plain")
    assert f"{canvas_status} " in canvas.text and "(Rate Limit Exceeded)" in canvas.text
    badgr = env.badgr("GET", "/v2/issuers")
    assert badgr.status_code == 429 and badgr.headers["x-rate-limit-remaining"] == "0.0"
    for answer in (canvas, badgr):
        assert 1 <= int(answer.headers["retry-after"]) <= 30


def test_token_expiry_is_a_401_on_the_next_request(make_env: EnvFactory) -> None:
    env = make_env(rates=only(FaultKind.TOKEN_EXPIRY))
    answer = env.get("/api/v1/courses")
    assert answer.status_code == 401 and answer.json() == {
        "errors": [{"message": "Invalid access token."}]
    }


def test_slow_response_moves_virtual_time_only(make_env: EnvFactory) -> None:
    env = make_env(rates=only(FaultKind.SLOW_RESPONSE))
    before = env.world.clock.now
    assert env.get("/api/v1/courses").status_code == 200
    assert env.world.clock.now - before >= 5


def test_timeout_before_commit_drops_the_connection_and_the_write(make_env: EnvFactory) -> None:
    env = make_env(rates=only(FaultKind.TIMEOUT_BEFORE_COMMIT))
    with pytest.raises(httpx.TimeoutException):  # an httpx.TransportError, not a 500
        env.badgr(
            "POST",
            f"/v2/badgeclasses/{env.badge}/assertions",
            json={"recipient": {"identity": "a@x.edu"}},
        )
    assert env.world.credentials.assertions_for(env.badge) == []


def test_lost_response_commits_but_the_client_sees_no_answer(make_env: EnvFactory) -> None:
    env = make_env(rates=only(FaultKind.LOST_RESPONSE))
    with pytest.raises(httpx.TransportError):
        env.badgr(
            "POST",
            f"/v2/badgeclasses/{env.badge}/assertions",
            json={"recipient": {"identity": "a@x.edu"}},
        )
    (award,) = env.world.credentials.assertions_for(env.badge)
    assert award.identity == "a@x.edu"
    assert env.services.log[-1][2:] == (FaultKind.LOST_RESPONSE, 201)


def test_a_connection_reset_is_an_httpx_read_error_and_applies_nothing(
    make_env: EnvFactory,
) -> None:
    env = make_env(rates=only(FaultKind.CONNECTION_RESET))
    with pytest.raises(httpx.ReadError):
        env.badgr(
            "POST",
            f"/v2/badgeclasses/{env.badge}/assertions",
            json={"recipient": {"identity": "a@x.edu"}},
        )
    assert env.world.credentials.assertions_for(env.badge) == []


# --------------------------------------------------------------------------- determinism

Step = tuple[Service, str, str, object]
HEAVY = FaultRates(
    transient_5xx=80,
    throttle=80,
    timeout_before_commit=80,
    connection_reset=80,
    lost_response=80,
    stale_read=80,
    page_drift=80,
    slow_response=80,
)


def script(env: Env) -> list[Step]:
    """Reads, numbered and bookmark pages, writes and requests no route matches."""
    group = f"/v2/issuers/{env.issuer}/recipient-groups/{env.group}"
    steps: list[Step] = []
    for i in range(6):
        steps += [
            (
                Service.CANVAS,
                "GET",
                f"/api/v1/courses/{COURSE_A}/users?per_page=2&page={1 + i % 3}",
                None,
            ),
            (Service.CANVAS, "GET", f"/api/v1/courses/{COURSE_A}/enrollments?per_page=3", None),
            (
                Service.CANVAS,
                "GET",
                f"/api/v1/courses/{COURSE_A}/students/submissions?student_ids[]=all",
                None,
            ),
            (Service.CANVAS, "GET", f"/api/v1/courses/{COURSE_B}/modules?include[]=items", None),
            (Service.CANVAS, "GET", "/api/v1/nowhere", None),
            (
                Service.CREDENTIALS,
                "POST",
                f"/v2/badgeclasses/{env.badge}/assertions",
                {"recipient": {"identity": f"s{i}@x.edu"}},
            ),
            (Service.CREDENTIALS, "GET", f"/v2/badgeclasses/{env.badge}/assertions?num=2", None),
            (
                Service.CREDENTIALS,
                "PUT",
                f"{group}/members/{1002 + i}",
                {"email": f"s{i}@x.edu", "name": "S", "earned": []},
            ),
            (
                Service.CREDENTIALS,
                "PUT",
                f"{group}/leaderboard",
                {"entries": [{"canvasUserId": 1002, "badges": i}]},
            ),
            (Service.CREDENTIALS, "PATCH", f"{group}/leaderboard", None),
        ]
    return steps


def outcome(answer: HttpResponse | Dropped) -> int | str:
    return answer.kind if isinstance(answer, Dropped) else answer.status


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_seed_same_fault_decisions_directly_and_over_asgi(
    make_env: EnvFactory, seed: int
) -> None:
    direct, http = make_env(seed, HEAVY), make_env(seed, HEAVY)
    direct_outcomes = []
    for service, method, path, body in script(direct):
        base, token = (
            (CANVAS, direct.canvas_token)
            if service is Service.CANVAS
            else (CRED, direct.cred_token)
        )
        request = ApiRequest(method, base + path, {"Authorization": f"Bearer {token}"}, body)
        direct_outcomes.append(outcome(direct.services.serve(service, request, path)))
    http_outcomes: list[int | str] = []
    for service, method, path, body in script(http):
        client, token = (
            (http.canvas, http.canvas_token)
            if service is Service.CANVAS
            else (http.cred, http.cred_token)
        )
        try:
            answer = client.request(
                method, path, headers={"Authorization": f"Bearer {token}"}, json=body
            )
        except httpx.TimeoutException:
            http_outcomes.append("timeout")
        except httpx.ReadError:
            http_outcomes.append("reset")
        else:
            http_outcomes.append(answer.status_code)
    decisions = [(t, fault, status) for t, _, fault, status in direct.services.log]
    assert decisions == [(t, fault, status) for t, _, fault, status in http.services.log]
    assert http_outcomes == direct_outcomes
    assert {"timeout", 503} <= set(direct_outcomes)  # the run really was faulted
    assert len(direct.world.credentials.assertions) == len(http.world.credentials.assertions)
