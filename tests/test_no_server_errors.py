"""Malformed requests to every route of both apps never get a 5xx, and every 4xx comes in
its service's error shape (never FastAPI's ``{"detail": ...}``).

Routes come from each app's own ``/openapi.json``, so a route added later is fuzzed without
touching this file. Faults are off: a 5xx here can only be a bug. Requests go in process
through ``httpx.ASGITransport``, whose default is to raise an application exception rather
than turn it into a 500, so a crash fails the test with its own traceback.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators import FaultPlan, FaultRates, SeededChoices, Service, Services, World
from simulators.http.apps import (
    CANVAS_TOKEN_PATH,
    CREDENTIALS_TOKEN_PATH,
    canvas_app,
    credentials_app,
)

TOKEN_PATHS = frozenset({CANVAS_TOKEN_PATH, CREDENTIALS_TOKEN_PATH})
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
QUERY_KEYS = (
    "page",
    "per_page",
    "include[]",
    "student_ids[]",
    "student_ids",
    "type[]",
    "state[]",
    "enrollment_type[]",
    "enrollment_state[]",
    "graded_since",
    "student_id",
    "assignment_ids[]",
    "access_token",
    "num",
    "cursor",
    "recipient",
    "include_revoked",
    "grant_type",
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@dataclass
class Target:
    """Both apps over one world, their routes, and ids worth aiming at."""

    loop: asyncio.AbstractEventLoop
    clients: dict[Service, httpx.AsyncClient]
    routes: list[tuple[Service, str, str]]
    ids: dict[str, list[str]]
    tokens: dict[Service, str]

    def send(self, service: Service, method: str, url: str, **kwargs: Any) -> httpx.Response:
        request = self.clients[service].request(method, url, **kwargs)
        return self.loop.run_until_complete(request)


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    world, rules = World.small(7)
    for course_id, course_rules in sorted(rules.items()):
        world.link_course(course_id, course_rules)
    services = Services(world, FaultPlan(FaultRates.none(), SeededChoices(7)))
    loop = asyncio.new_event_loop()
    clients = {
        Service.CANVAS: _client(canvas_app(services), "http://canvas.test"),
        Service.CREDENTIALS: _client(credentials_app(services), "http://credentials.test"),
    }
    routes = []
    for service, client in clients.items():
        paths = loop.run_until_complete(client.get("/openapi.json")).json()["paths"]
        routes += [(service, m.upper(), p) for p, ops in sorted(paths.items()) for m in ops]
    tokens = {service: world.tokens.issue(service) for service in Service}
    yield Target(loop, clients, routes, known_ids(world), tokens)
    for client in clients.values():
        loop.run_until_complete(client.aclose())
    loop.close()


def known_ids(world: World) -> dict[str, list[str]]:
    """Real values for each path parameter name (after awarding one badge, so there is an
    assertion to aim at), so fuzzed requests get past the 404s to the handlers' logic."""
    creds, canvas = world.credentials, world.canvas
    first_award = creds.award(next(iter(creds.badge_classes)), "fuzz@x.edu").entity_id
    return {
        "course_id": [str(c) for c in canvas.courses],
        "user_id": ["self", *(str(u) for u in list(canvas.users)[:5])],
        "assignment_id": [str(a) for a in canvas.assignments],
        "module_id": [str(m) for m in canvas.modules],
        "issuer_id": list(creds.issuers),
        "badge_id": list(creds.badge_classes),
        "assertion_id": [first_award, "revoke"],
        "group_id": list(creds.groups),
    }


def _client(app: Any, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@st.composite
def path_value(draw: st.DrawFn, name: str, known: dict[str, list[str]]) -> str:
    """A real id, an unknown number, or garbage; usually one segment, sometimes several."""
    real = st.sampled_from(known.get(name, ["1"]))
    raw = draw(real | real | st.integers(-(2**65), 2**65).map(str) | st.text(max_size=24))
    return quote(raw, safe=draw(st.sampled_from(["", "", "/"])))


@st.composite
def body_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["none", "json", "bytes", "form"]))
    if kind == "json":
        return {"json": draw(JSON)}
    if kind == "form":
        fields = st.sampled_from(
            ["grant_type", "username", "password", "refresh_token", "client_id", "client_secret"]
        )
        return {"data": draw(st.dictionaries(fields, st.text(max_size=16), max_size=4))}
    if kind == "bytes":
        content_type = draw(
            st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"])
        )
        return {"content": draw(st.binary(max_size=64)), "headers": {"Content-Type": content_type}}
    return {}


def is_envelope_error(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"status", "validationErrors", "fieldErrors", "result"}
        and body["status"]["success"] is False
        and isinstance(body["status"]["description"], str)
        and body["result"] == []
    )


def has_error_shape(service: Service, grant: bool, body: Any) -> bool:
    """OAuth's ``error`` from a token grant; Canvas's ``errors`` (or a hand-rolled
    ``error``, as several real Canvas 400s are); Badgr's envelope."""
    if grant:
        return isinstance(body, dict) and isinstance(body.get("error"), str)
    if service is Service.CANVAS:
        return isinstance(body, dict) and ("errors" in body or "error" in body)
    return is_envelope_error(body)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_every_route_survives_malformed_requests(target: Target, data: st.DataObject) -> None:
    service, method, template = data.draw(st.sampled_from(target.routes))
    parts = [
        data.draw(path_value(part[1:-1], target.ids)) if part.startswith("{") else part
        for part in template.split("/")
    ]
    path = "/".join(parts)
    query = data.draw(
        st.lists(
            st.tuples(st.sampled_from(QUERY_KEYS) | st.text(max_size=6), st.text(max_size=16)),
            max_size=4,
        )
    )
    method = data.draw(st.sampled_from([method, method, *METHODS]))
    valid = f"Bearer {target.tokens[service]}"
    auth = data.draw(st.sampled_from([valid, valid, valid, "Bearer nope", "Basic Og==", None]))
    kwargs = data.draw(body_kwargs())
    headers = {**kwargs.pop("headers", {}), **({"Authorization": auth} if auth else {})}
    response = target.send(service, method, path, params=query, headers=headers, **kwargs)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert "detail" not in body, body
        grant = method == "POST" and path in TOKEN_PATHS  # other methods reach the API
        assert has_error_shape(service, grant, body), body


def nested_token(depth: int) -> str:
    """A cursor or bookmark that decodes to JSON nested deeper than the parser allows."""
    return base64.urlsafe_b64encode(b"[" * depth).decode().rstrip("=")


def test_nested_bombs_in_cursors_bookmarks_and_bodies(target: Target) -> None:
    canvas_auth = {"Authorization": f"Bearer {target.tokens[Service.CANVAS]}"}
    bookmark = f"bookmark:{nested_token(10_000)}"
    restarted = target.send(
        Service.CANVAS,
        "GET",
        "/api/v1/courses/101/enrollments",
        params={"page": bookmark},
        headers=canvas_auth,
    )
    assert restarted.status_code == 200  # an undecodable bookmark restarts at page one
    cred_auth = {"Authorization": f"Bearer {target.tokens[Service.CREDENTIALS]}"}
    badge = target.ids["badge_id"][0]
    cursor = {"num": "2", "cursor": nested_token(10_000)}
    listed = target.send(
        Service.CREDENTIALS,
        "GET",
        f"/v2/badgeclasses/{badge}/assertions",
        params=cursor,
        headers=cred_auth,
    )
    assert listed.status_code == 404 and is_envelope_error(listed.json())
    bomb = b"[" * 100_000
    posted = target.send(
        Service.CREDENTIALS,
        "POST",
        "/v2/assertions/revoke",
        content=bomb,
        headers={**cred_auth, "Content-Type": "application/json"},
    )
    assert posted.status_code == 400 and is_envelope_error(posted.json())
