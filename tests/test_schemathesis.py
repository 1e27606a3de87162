"""schemathesis against both fakes' own ``/openapi.json``: every documented operation, fed
generated query parameters and bodies (valid and invalid), answers with a status it
documents, in a content type it documents, with a body its schema accepts, and never a 5xx.

Each operation is one test over a fresh world, in process over ASGI. Faults are off, so a
5xx can only be a bug, and every operation starts with an empty Canvas leaky bucket, so
earlier operations cannot throttle later ones into 429s. Path values are mostly real ids
(generated strings only ever meet a 404), and requests carry a valid token (the service's,
or for Canvas a student's) so they reach the handlers; a second, smaller run sends no
token, so the 401s are checked too.

Hypothesis settings come from the loaded profile (``ci``: derandomized, no database), with
``max_examples`` bounded per operation so the file stays fast. The last test breaks
handlers on purpose and shows each check catching them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup, ServerError
from schemathesis.openapi.checks import JsonSchemaError, UndefinedContentType, UndefinedStatusCode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from test_no_server_errors import known_ids

from simulators import (
    FaultPlan,
    FaultRates,
    SeededChoices,
    Service,
    Services,
    World,
)
from simulators.api import JSON_TYPE
from simulators.canvas import api as canvas_api
from simulators.credentials import api as credentials_api
from simulators.http.apps import (
    CANVAS_ENDPOINTS,
    CANVAS_TOKEN_PATH,
    CREDENTIALS_ENDPOINTS,
    CREDENTIALS_TOKEN_PATH,
    canvas_app,
    credentials_app,
)
from sync_core.wire import HttpResponse

CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Per operation. Measured: the whole file takes ~40 s of CPU in one process (about 650 requests).
AUTHORIZED_EXAMPLES = 15
UNAUTHORIZED_EXAMPLES = 3

APPS: dict[Service, Callable[[Services], FastAPI]] = {
    Service.CANVAS: canvas_app,
    Service.CREDENTIALS: credentials_app,
}
_COURSE = "/api/v1/courses/{course_id}"
_GROUP = "/v2/issuers/{issuer_id}/recipient-groups/{group_id}"
OPERATIONS = [
    *((Service.CANVAS, e.method, e.path) for e in CANVAS_ENDPOINTS),
    (Service.CANVAS, "POST", CANVAS_TOKEN_PATH),
    *((Service.CREDENTIALS, e.method, e.path) for e in CREDENTIALS_ENDPOINTS),
    (Service.CREDENTIALS, "POST", CREDENTIALS_TOKEN_PATH),
]


@dataclass(frozen=True)
class Fake:
    """One service's app over a fresh world: its loaded schema, valid tokens (the service
    token, and for Canvas a student's too, which meets the 403s), real values for each path
    parameter, and valid bodies by path for the writes whose success needs values no
    generator guesses (client secrets, refresh tokens, real badge class ids)."""

    schema: schemathesis.BaseSchema
    tokens: tuple[str, ...]
    ids: dict[str, list[str]]
    bodies: dict[str, list[object]]


def fake(service: Service) -> Fake:
    """A fresh world, so each test is deterministic whichever xdist worker runs it and
    in whatever order."""
    world, rules = World.small(7)
    for course_id, course_rules in sorted(rules.items()):
        world.link_course(course_id, course_rules)
    app = APPS[service](Services(world, FaultPlan(FaultRates.none(), SeededChoices(7))))
    app.openapi_schema = _document(service)  # FastAPI's own cache: skip regenerating it
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ids = known_ids(world)
    if service is Service.CREDENTIALS:
        return Fake(schema, (world.tokens.issue(service),), ids, _credentials_bodies(world))
    student = min(
        e.user_id
        for course_id in world.canvas.courses
        for e in world.canvas.enrollments_in(course_id)
        if e.type == "StudentEnrollment"
    )
    world.tokens.add_client(Service.CANVAS, "key-1", "secret-1")
    _, refresh = world.tokens.issue_pair(Service.CANVAS, student)
    grant = {
        "grant_type": "refresh_token",
        "client_id": "key-1",
        "client_secret": "secret-1",
        "refresh_token": refresh,
    }
    tokens = (world.tokens.issue(service), world.tokens.issue(service, user_id=student))
    return Fake(schema, tokens, ids, {CANVAS_TOKEN_PATH: [grant]})


def _credentials_bodies(world: World) -> dict[str, list[object]]:
    """A login for the password grant, a member in every group (so a DELETE finds one),
    and a member PUT that earns a real badge class."""
    creds = world.credentials
    world.tokens.add_login("ada@x.edu", "pw")
    grant = {"grant_type": "password", "username": "ada@x.edu", "password": "pw"}
    for group in creds.groups:
        for user_id in world.canvas.users:
            creds.upsert_member(group, user_id, f"u{user_id}@x.edu", f"User {user_id}", [])
    member = {"email": "ada@x.edu", "name": "Ada", "earned": [next(iter(creds.badge_classes))]}
    return {CREDENTIALS_TOKEN_PATH: [grant], f"{_GROUP}/members/{{user_id}}": [member]}


@cache
def _document(service: Service) -> dict[str, Any]:
    """The app's OpenAPI document, the same for every world: generated once."""
    world, _ = World.small(7)
    return APPS[service](Services(world, FaultPlan(FaultRates.none(), SeededChoices(7)))).openapi()


def bounded(examples: int) -> settings:
    """The loaded profile (``ci``: derandomized, no database) with ``examples`` per run;
    no deadline (a request crosses a thread into the ASGI app)."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def run(target: Fake, method: str, path: str, tokens: tuple[str, ...], bounds: settings) -> None:
    """Generate cases for one operation (valid ones, and invalid bodies too), send each
    with one of ``tokens`` (none if empty) and run :data:`CHECKS` on the answer; a failing
    check raises schemathesis's ``FailureGroup``. Path values are real ids, or
    schemathesis's own string."""
    operation = target.schema[path][method]
    # Parameters are documented as any string, so only a body can be invalid.
    modes = list(GenerationMode) if operation.body else [GenerationMode.POSITIVE]
    cases = st.one_of([operation.as_strategy(generation_mode=mode) for mode in modes])

    @bounds
    @given(case=cases, data=st.data())
    def conforms(case: schemathesis.Case, data: st.DataObject) -> None:
        if operation.path in target.bodies:
            case.body = data.draw(st.sampled_from([*target.bodies[operation.path], case.body]))
        case.path_parameters = {  # mostly a real id: a generated one only meets a 404
            name: data.draw(st.sampled_from([*target.ids[name] * 3, value]), label=name)
            for name, value in (case.path_parameters or {}).items()
        }
        headers = {}
        if tokens:
            headers["Authorization"] = f"Bearer {data.draw(st.sampled_from(tokens), label='token')}"
        case.call_and_validate(headers=headers, checks=CHECKS)

    conforms()


@pytest.mark.parametrize(("service", "method", "path"), OPERATIONS)
def test_operation_conforms_with_a_valid_token(service: Service, method: str, path: str) -> None:
    target = fake(service)
    run(target, method, path, target.tokens, bounded(AUTHORIZED_EXAMPLES))


@pytest.mark.parametrize(("service", "method", "path"), OPERATIONS)
def test_operation_conforms_without_a_token(service: Service, method: str, path: str) -> None:
    run(fake(service), method, path, (), bounded(UNAUTHORIZED_EXAMPLES))


@dataclass(frozen=True)
class Break:
    """A deliberately broken handler, and the failure schemathesis must report for it."""

    module: ModuleType
    name: str
    broken: Callable[[Any], Any]
    service: Service
    method: str
    path: str
    caught: type[Failure]


def _without_name(real: Callable[..., dict[str, object]]) -> Callable[..., dict[str, object]]:
    return lambda course: {k: v for k, v in real(course).items() if k != "name"}


def _as_500(real: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    return lambda *args: HttpResponse(500, JSON_TYPE, real(*args).body)


def _as_text(real: dict[str, str]) -> dict[str, str]:
    return {"Content-Type": "text/html"}


def _as_202(real: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    return lambda result, *args: real(result, 202, *args[1:])


BREAKS = [
    # A record missing a required field.
    Break(
        canvas_api, "course_json", _without_name, Service.CANVAS, "GET", _COURSE, JsonSchemaError
    ),
    # Every success turned into a 500.
    Break(canvas_api, "_ok", _as_500, Service.CANVAS, "GET", _COURSE, ServerError),
    # Badgr's JSON-LD answered as HTML.
    Break(
        credentials_api,
        "CONTENT_TYPE",
        _as_text,
        Service.CREDENTIALS,
        "GET",
        "/v2/issuers",
        UndefinedContentType,
    ),
    # A success with a status the route never documents.
    Break(
        credentials_api,
        "ok",
        _as_202,
        Service.CREDENTIALS,
        "GET",
        "/v2/issuers",
        UndefinedStatusCode,
    ),
]


@pytest.mark.parametrize("broken", BREAKS, ids=lambda b: f"{b.module.__name__}.{b.name}")
def test_a_broken_handler_fails_the_run(monkeypatch: pytest.MonkeyPatch, broken: Break) -> None:
    monkeypatch.setattr(
        broken.module, broken.name, broken.broken(getattr(broken.module, broken.name))
    )
    target = fake(broken.service)
    no_shrinking = settings(bounded(10), phases=[Phase.generate])
    with pytest.raises(FailureGroup) as raised:
        run(target, broken.method, broken.path, target.tokens[:1], no_shrinking)
    assert broken.caught in failure_types(raised.value), raised.value


def failure_types(error: BaseException) -> set[type[BaseException]]:
    """Every failure inside ``error``, however Hypothesis and schemathesis grouped them."""
    if isinstance(error, BaseExceptionGroup):
        return {t for inner in error.exceptions for t in failure_types(inner)}
    return {type(error)}
